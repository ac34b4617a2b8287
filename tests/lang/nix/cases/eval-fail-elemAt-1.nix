builtins.elemAt "foo" (-1)
