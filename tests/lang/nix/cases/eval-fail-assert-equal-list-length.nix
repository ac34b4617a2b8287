assert
  [
    1
    0
  ] == [ 10 ];
throw "unreachable"
