"""The git-backed, content-addressed store (see core.py for the layout).

Public surface::

    from reprobuild.store import Store, StepRecord, BuildRecord, Output, Blob
"""

from reprobuild.store.content import ContentCorrupt, ContentMissing
from reprobuild.store.core import (
    BuildInfo,
    GcReport,
    ListEntry,
    Problem,
    Store,
    VerifyReport,
    default_store_path,
)
from reprobuild.store.records import Blob, BuildRecord, Output, StepRecord, TransferReport

__all__ = [
    "Blob",
    "BuildInfo",
    "BuildRecord",
    "ContentCorrupt",
    "ContentMissing",
    "GcReport",
    "ListEntry",
    "Output",
    "Problem",
    "StepRecord",
    "Store",
    "TransferReport",
    "VerifyReport",
    "default_store_path",
]
