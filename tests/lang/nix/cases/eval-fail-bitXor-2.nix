builtins.bitXor 1 2.2
