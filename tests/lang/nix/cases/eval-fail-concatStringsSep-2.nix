builtins.concatStringsSep "foo" { }
