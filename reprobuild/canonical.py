"""Canonical JSON: the one definition of the bytes a value is hashed or written as.

Step keys, effective keys, OCI blobs, store records, manifests and lockfiles
are all content-addressed or compared byte for byte across organizations, so
they share one set of rules: keys sorted, UTF-8 as is (no ``\\u`` escapes), no
NaN or infinity (JSON has none; a float that is not finite is refused, not
written as ``NaN``). Two layouts: compact (no insignificant whitespace: what
is hashed) and ``document=True`` (two-space indent and a final newline: files
a person reads and diffs, such as lockfiles and records).
"""

from __future__ import annotations

import json

__all__ = ["canonical_bytes", "canonical_json"]


def canonical_json(value: object, *, document: bool = False) -> str:
    """*value* as canonical JSON text (compact, or indented with a final newline)."""
    if document:
        text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        return text + "\n"
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_bytes(value: object, *, document: bool = False) -> bytes:
    """:func:`canonical_json` encoded as UTF-8: what is hashed or stored."""
    return canonical_json(value, document=document).encode("utf-8")
