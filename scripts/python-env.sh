#!/usr/bin/env bash
# Creates (once) the Python virtual environment the interoperability tests use and prints
# the path of its python. Idempotent: it reinstalls only when requirements-test.txt changes.
#
#   scripts/python-env.sh            # prints e.g. <repo>/target/py-venv/bin/python
#
# The environment lives under target/ so it is ignored by git and cleaned with the build.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${CLOSEDLOOP_PY_VENV:-$root/target/py-venv}"
requirements="$root/scripts/requirements-test.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Setting up the Python test environment in $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --requirement "$requirements" >&2
  echo "$want" > "$stamp"
fi

echo "$venv/bin/python"
