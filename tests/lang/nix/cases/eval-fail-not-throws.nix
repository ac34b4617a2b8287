!(throw "uh oh!")
