assert false == null;
abort "unreachable"
