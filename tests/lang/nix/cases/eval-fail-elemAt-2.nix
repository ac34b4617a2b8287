builtins.elemAt [ ] (-1)
