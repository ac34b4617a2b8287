builtins.substring (-3) 3 "sometext"
