# foo
invalid
# bar
