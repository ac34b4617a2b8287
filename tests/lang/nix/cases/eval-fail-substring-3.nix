builtins.substring 0 3 { }
