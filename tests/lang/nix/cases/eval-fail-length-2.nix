builtins.length "foo"
