import ./non-eval-trivial-lambda-formals.nix { }
