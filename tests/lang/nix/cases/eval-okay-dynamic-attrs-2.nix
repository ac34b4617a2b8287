{
  a."${"b"}" = true;
  a."${"c"}" = false;
}
.a.b
