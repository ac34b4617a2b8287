"""Debian and its derivatives: everything that knows the ``deb`` package format.

Signed ``InRelease`` and ``Packages`` indexes (:mod:`.index`), dpkg's version
order (:mod:`.versions`), apt's resolver (:mod:`.resolve`), locking a
snapshot (:mod:`.lock`), unpacking ``.deb`` files (:mod:`.unpack`) into a tree
with dpkg's database (:mod:`.dpkgdb`), and installing a root file system
(:mod:`.install`), behind :class:`.format.DebianFormat`.
"""
