"""Arch Linux: everything that knows the ``alpm`` (pacman) package format.

Sync databases (:mod:`.sync_db`), package metadata (:mod:`.package`),
pacman's version order (:mod:`.versions`), package signatures (:mod:`.trust`),
pacman's resolver (:mod:`.resolve`), locking a snapshot (:mod:`.lock`) and
installing packages as ``pacman -U`` does (:mod:`.install`), behind
:class:`.format.ArchFormat`.
"""
