builtins.filter (_: 5) [ "foo" ]
