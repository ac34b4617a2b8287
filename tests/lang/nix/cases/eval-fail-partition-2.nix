builtins.partition (_: 1) "foo"
