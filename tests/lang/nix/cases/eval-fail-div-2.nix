builtins.div 1 "foo"
