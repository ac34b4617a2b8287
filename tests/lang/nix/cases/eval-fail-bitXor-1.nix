builtins.bitXor 1.1 2
