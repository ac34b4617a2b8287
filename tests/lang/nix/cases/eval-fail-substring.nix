builtins.substring (builtins.sub 0 1) 1 "x"
