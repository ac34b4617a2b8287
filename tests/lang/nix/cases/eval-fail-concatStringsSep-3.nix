builtins.concatStringsSep "foo" [
  1
  2
  { }
]
