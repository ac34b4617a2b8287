#!/usr/bin/env python3
"""Export benchmarks of the image issue, in one run: OCI (gzip, zstd) against
`tar | gzip -n`, then ISO, ext4 and squashfs against xorriso, mkfs.ext4 -d and
mksquashfs run directly on the same tree. Each part prints its own ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    status = 0
    for part in ("_export_oci.py", "_export_images.py"):
        print(f"== {part}", flush=True)
        status |= subprocess.run([sys.executable, str(HERE / part), *sys.argv[1:]]).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
