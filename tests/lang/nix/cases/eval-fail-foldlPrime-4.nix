builtins.foldl' (a: b: a && b) "foo" [ true ]
