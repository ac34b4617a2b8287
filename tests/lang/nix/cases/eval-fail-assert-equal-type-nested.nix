assert { ding = false; } == { ding = null; };
abort "unreachable"
