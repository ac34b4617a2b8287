builtins.concatLists [
  [ 1 ]
  "foo"
]
