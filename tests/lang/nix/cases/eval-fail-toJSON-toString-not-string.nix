builtins.toJSON { __toString = self: 42; }
