builtins.hashString "foo" "content"
