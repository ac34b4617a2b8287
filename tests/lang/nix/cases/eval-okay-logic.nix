assert !false && (true || false) -> true;
1
