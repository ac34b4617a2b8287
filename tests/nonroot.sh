#!/usr/bin/env bash
# The tests that make sense unprivileged, run without root (make test-nonroot).
#
# As root, they run as user nobody (setpriv: no capabilities, no groups), with
# an interpreter nobody can execute: the project's .venv when it can, otherwise
# .venv-nonroot made from the system python3 (a pyenv under /root is not
# readable by nobody). Not as root: they simply run as the calling user.
# Usage: tests/nonroot.sh PYTEST-ARGS...
set -euo pipefail
cd "$(dirname "$0")/.."

args=(-q -p no:cacheprovider -m "not slow" "$@")
if [ "$(id -u)" != 0 ]; then
  exec .venv/bin/python -m pytest "${args[@]}"
fi

USER_ID=${NONROOT_UID:-65534}
as_nobody=(setpriv --reuid="$USER_ID" --regid="$USER_ID" --clear-groups --inh-caps=-all --bounding-set=-all)
# Tests start the interpreter again (sys.executable): check it from a child process.
runs() { "${as_nobody[@]}" /bin/sh -c '"$0" -c "import reprobuild, pytest"' "$1" 2>/dev/null; }
python=.venv/bin/python
if ! runs "$python"; then
  python=.venv-nonroot/bin/python
  if ! runs "$python" || [ pyproject.toml -nt .venv-nonroot/.installed ]; then
    system=$(command -v /usr/bin/python3 || command -v python3)
    echo "nonroot: $(readlink -f .venv/bin/python) is not executable by uid $USER_ID;" \
      "making .venv-nonroot from $system" >&2
    "$system" -m venv .venv-nonroot
    .venv-nonroot/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    touch .venv-nonroot/.installed
  fi
fi
home=$(mktemp -d /tmp/reprobuild-nonroot-XXXXXX)
chown "$USER_ID:$USER_ID" "$home"
trap 'rm -rf "$home"' EXIT
"${as_nobody[@]}" env -i PATH="$PATH" HOME="$home" TMPDIR=/tmp LANG=C.UTF-8 \
  XDG_CACHE_HOME="$home/cache" HYPOTHESIS_STORAGE_DIRECTORY="$home/hypothesis" \
  PYTHONDONTWRITEBYTECODE=1 CI="${CI:-}" \
  "$python" -m pytest "${args[@]}"
