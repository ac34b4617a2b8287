builtins.replaceStrings [ "old" ] [ "new" ] { }
