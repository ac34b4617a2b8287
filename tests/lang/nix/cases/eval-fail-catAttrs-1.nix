builtins.catAttrs [ ] { }
