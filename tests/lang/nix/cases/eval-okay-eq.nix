[
  "foobar"
  (rec {
    x = 1;
    y = x;
  })
] == [
  ("foo" + "bar")
  ({
    x = 1;
    y = 1;
  })
]
