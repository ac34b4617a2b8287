builtins.getAttr [ ] [ ]
