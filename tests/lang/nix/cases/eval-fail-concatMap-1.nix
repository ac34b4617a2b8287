builtins.concatMap 1 "foo"
