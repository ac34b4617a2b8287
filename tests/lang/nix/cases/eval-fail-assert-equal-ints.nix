assert { b = 1; } == { b = 2; };
abort "unreachable"
