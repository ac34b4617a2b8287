builtins.bitAnd 1 2.2
