builtins.lessThan 1 "foo"
