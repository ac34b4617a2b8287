builtins.elem 1 "foo"
