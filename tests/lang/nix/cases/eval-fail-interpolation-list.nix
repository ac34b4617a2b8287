# Interpolation does weak coercion after peeling.
"${{
  __toString = self: [
    "1"
    "2"
  ];
}}"
