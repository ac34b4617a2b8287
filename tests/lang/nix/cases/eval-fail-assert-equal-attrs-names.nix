assert
  {
    a = true;
    b = true;
  } == {
    a = true;
  };
throw "unreachable"
