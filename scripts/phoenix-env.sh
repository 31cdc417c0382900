#!/usr/bin/env bash
# Creates (once) the virtual environment with Arize Phoenix that the Phoenix backend test
# runs, and prints the path of its python. Idempotent: it reinstalls only when
# requirements-phoenix.txt changes.
#
#   scripts/phoenix-env.sh           # prints e.g. <repo>/target/phoenix-venv/bin/python
#   CLOSEDLOOP_TEST_PHOENIX_PYTHON=$(scripts/phoenix-env.sh) \
#       cargo test -p closedloop-receiver --test phoenix
#
# The environment lives under target/ so it is ignored by git and cleaned with the build.
# Phoenix has its own environment, apart from the OpenTelemetry peers of python-env.sh,
# because it pins OpenTelemetry packages of its own.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${CLOSEDLOOP_PHOENIX_VENV:-$root/target/phoenix-venv}"
requirements="$root/scripts/requirements-phoenix.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Setting up the Phoenix environment in $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --requirement "$requirements" >&2
  echo "$want" > "$stamp"
fi

echo "$venv/bin/python"
