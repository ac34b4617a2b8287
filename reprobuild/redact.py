"""Passwords in URLs never reach a message, a JSON field, a log or a record.

``https://alice:TOKEN@host/repo`` is shown as ``https://alice:***@host/repo``
(the user stays: it says whose credentials were used). Everything that prints
or stores a remote's address goes through :func:`redact`; the CLI also passes
every error and JSON document it prints through it, so a URL quoted by a
library (dulwich, urllib3) inside an exception's text is caught too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# scheme://user:password@ : the password is anything up to the '@' that ends the
# authority (no '/', no whitespace, no quote of a repr around it).
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s'\"]*):(?P<password>[^/\s'\"]*)@"
)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}:***@", text)


def has_password(url: str) -> bool:
    """True if ``url`` carries a password (``scheme://user:password@host``)."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return bool(_USERINFO.search(url))


__all__ = ["has_password", "redact"]
