builtins.seq (abort "foo") 2
