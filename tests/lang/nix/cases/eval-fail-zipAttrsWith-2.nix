builtins.zipAttrsWith (_: 1) [ 1 ]
