builtins.genList 1 "foo"
