builtins.genericClosure {
  startSet = [ "not an attrset" ];
  operator = x: [ ];
}
