"""Ubuntu: Debian's package format, its own archive layout and names (:mod:`.format`)."""
