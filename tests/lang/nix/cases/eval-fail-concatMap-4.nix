builtins.concatMap (x: "foo") [
  1
  2
]
