# fooinvalid
# bar
