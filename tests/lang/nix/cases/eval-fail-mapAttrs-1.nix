builtins.mapAttrs [ ] [ ]
