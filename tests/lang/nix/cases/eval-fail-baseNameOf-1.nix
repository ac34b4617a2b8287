builtins.baseNameOf [ ]
