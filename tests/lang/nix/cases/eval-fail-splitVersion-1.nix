builtins.splitVersion 1
