"""reprobuild: bit-for-bit reproducible OS images from dated archive snapshots."""

__version__ = "0.1.0"

# Bumped whenever a change alters the bytes of any output; part of every step key.
FORMAT_VERSION = 1
