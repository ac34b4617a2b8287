builtins.ceil "foo"
