builtins.split "f(o*o" "1foo2"
