builtins.getAttr "foo" [ ]
