builtins.compareVersions "abd" { }
