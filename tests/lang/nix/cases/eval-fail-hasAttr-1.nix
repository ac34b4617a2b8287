builtins.hasAttr [ ] [ ]
