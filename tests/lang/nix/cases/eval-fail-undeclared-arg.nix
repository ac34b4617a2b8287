({ x, z }: x + z) {
  x = "foo";
  y = "bla";
  z = "bar";
}
