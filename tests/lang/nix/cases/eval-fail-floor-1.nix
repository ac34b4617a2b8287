builtins.floor "foo"
