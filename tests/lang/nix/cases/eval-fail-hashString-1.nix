builtins.hashString 1 { }
