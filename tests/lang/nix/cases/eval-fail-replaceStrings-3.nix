builtins.replaceStrings [ 0 ] [ ] { }
