builtins.foldl' 1 "foo" true
