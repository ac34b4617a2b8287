builtins.partition 1 "foo"
