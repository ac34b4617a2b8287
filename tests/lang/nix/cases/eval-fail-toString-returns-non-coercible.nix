# interpolation checks the return type of __toString
"${{ __toString = self: null; }}"
