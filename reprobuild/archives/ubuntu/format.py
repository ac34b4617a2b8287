"""Ubuntu as a subclass of Debian: the same ``deb`` format, indexes and tools.

What differs is small and all here (docs/adding-a-distribution.md walks
through it): Ubuntu's packages are named ``pkg:deb/ubuntu/...`` in SBOMs and
known to rebuilderd as ``ubuntu``; and Ubuntu keeps its architectures in two
archives, ``ubuntu`` (amd64, i386) and ``ubuntu-ports`` (arm64, armhf,
ppc64el, riscv64, s390x), so a snapshot of the one for an architecture only
the other carries is refused at once, naming the right archive, instead of
failing later on a missing index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from reprobuild.archives.debian.format import DebianFormat
from reprobuild.errors import UsageError

if TYPE_CHECKING:
    from reprobuild.archives import ArchiveDef
    from reprobuild.archives.formats import AcquiredSnapshot
    from reprobuild.fetch import Fetcher
    from reprobuild.locking import Sources
    from reprobuild.plan import Step

__all__ = ["UbuntuFormat"]


class UbuntuFormat(DebianFormat):
    """Ubuntu: Debian's format with Ubuntu's names and its split archive."""

    distribution = "ubuntu"
    title = "Ubuntu"
    purl_namespace = "ubuntu"
    rebuilderd = "ubuntu"
    # The archives of Ubuntu's snapshot service and the architectures each carries.
    ARCHIVES: ClassVar[dict[str, frozenset[str]]] = {
        "ubuntu": frozenset({"amd64", "i386"}),
        "ubuntu-ports": frozenset({"arm64", "armhf", "ppc64el", "riscv64", "s390x"}),
    }

    def acquire(
        self, name: str, step: Step, archive: ArchiveDef, fetcher: Fetcher, sources: Sources
    ) -> AcquiredSnapshot:
        arch = step.param_data().get("arch") or archive.arch or self.default_architecture
        carried = self.ARCHIVES.get(archive.name)
        if carried is not None and arch not in carried:
            other = next((a for a, archs in self.ARCHIVES.items() if arch in archs), None)
            err = UsageError(
                f"snapshot '{name}': Ubuntu's archive {archive.name!r} does not carry "
                f"architecture {arch!r}",
                hint=f'use archive = "{other}"' if other else "Ubuntu does not build it",
            )
            err.where = (step.key, "arch", None)
            raise err
        return super().acquire(name, step, archive, fetcher, sources)
