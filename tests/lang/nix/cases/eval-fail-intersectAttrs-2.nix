builtins.intersectAttrs { } [ ]
