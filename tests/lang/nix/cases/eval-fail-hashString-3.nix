builtins.hashString "sha256" { }
