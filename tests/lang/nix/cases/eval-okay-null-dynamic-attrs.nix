{ ${null} = true; } == { }
