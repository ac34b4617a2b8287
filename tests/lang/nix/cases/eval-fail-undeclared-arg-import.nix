import ./non-eval-trivial-lambda-formals.nix {
  a = "a";
  b = "b";
}
