"""apt's one-line ``sources.list`` format, read (verify recognises a root by it)."""

from __future__ import annotations

__all__ = ["first_deb_source"]


def first_deb_source(text: str) -> tuple[str, str, tuple[str, ...]] | None:
    """The ``(uri, suite, components)`` of the first plain ``deb`` line (one
    without ``[options]``), or None: what debuerreotype writes into a root."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "deb" and not words[1].startswith("["):
            return words[1], words[2], tuple(words[3:])
    return None
