builtins.filter 1 "foo"
