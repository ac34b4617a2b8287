builtins.substring 3 "foo" true
