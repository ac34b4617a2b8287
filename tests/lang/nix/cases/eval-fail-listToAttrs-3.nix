builtins.listToAttrs [ { } ]
