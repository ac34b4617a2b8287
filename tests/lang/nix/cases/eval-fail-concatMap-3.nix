builtins.concatMap (x: 1) [ "foo" ]
