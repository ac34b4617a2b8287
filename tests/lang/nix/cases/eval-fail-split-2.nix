builtins.split "foo" { }
