builtins.match "foo" { }
