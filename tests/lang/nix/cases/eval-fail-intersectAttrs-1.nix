builtins.intersectAttrs [ ] [ ]
