builtins.elemAt [ "foo" ] 3
