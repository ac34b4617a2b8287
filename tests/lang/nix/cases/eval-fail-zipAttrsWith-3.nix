builtins.zipAttrsWith (_: 1) [ { foo = 1; } ]
