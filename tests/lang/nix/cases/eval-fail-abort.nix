if true then abort "this should fail" else 1
