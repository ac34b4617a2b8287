builtins.replaceStrings [ ] 0 { }
