builtins.sort (_: _: 1) [
  "foo"
  "bar"
]
