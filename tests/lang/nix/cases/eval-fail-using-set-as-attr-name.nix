let
  attr = {
    foo = "bar";
  };
  key = { };
in
attr.${key}
