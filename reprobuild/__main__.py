"""``python -m reprobuild``: the same as the ``reprobuild`` command."""

from reprobuild.cli import main

main()
