builtins.lessThan [ 1 2 ] [ "foo" ]
