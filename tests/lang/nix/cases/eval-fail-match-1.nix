builtins.match 1 { }
