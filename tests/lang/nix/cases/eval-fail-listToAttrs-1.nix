builtins.listToAttrs 1
