assert ./foo == ./bar;
throw "unreachable"
