builtins.substring { } "foo" true
