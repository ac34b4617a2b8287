builtins.readFile ./eval-okay-readfile.nix
