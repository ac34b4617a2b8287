builtins.zipAttrsWith (a: b: a + b) [
  { foo = 1; }
  { foo = 2; }
]
