builtins.match "(.*" ""
