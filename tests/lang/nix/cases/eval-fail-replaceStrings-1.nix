builtins.replaceStrings 0 0 { }
