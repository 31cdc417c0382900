#!/usr/bin/env bash
# The Python client's tests (clients/python) and the acceptance tests with the real
# instrumentation libraries, against the closedloop binary.
#
#   scripts/python-clients.sh [pytest arguments]
#
# Creates (once) two virtual environments under target/py-clients, one per requirements file
# in clients/python/tests/acceptance (traceloop-sdk pins its own OpenTelemetry), and recreates
# one only when its requirements file changes. Installs clients/python from the path into
# both on every run, then runs pytest. The binary is CLOSEDLOOP_BIN, else target/debug/closedloop
# (built with `cargo build -p closedloop-cli` when missing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
client="$root/clients/python"
requirements="$client/tests/acceptance"
envs="$root/target/py-clients"

binary="${CLOSEDLOOP_BIN:-$root/target/debug/closedloop}"
if [ ! -x "$binary" ]; then
  echo "Building closedloop (cargo build -p closedloop-cli)" >&2
  (cd "$root" && cargo build -p closedloop-cli >&2)
fi

# Prints the python of the environment NAME, built from requirements-NAME.txt.
environment() {
  local name=$1 venv="$envs/$1" file="$requirements/requirements-$1.txt" want
  want=$(sha256sum "$file" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "Setting up the Python environment $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --requirement "$file" >&2
    echo "$want" > "$venv/.requirements.sha256"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall "$client" >&2
  echo "$venv/bin/python"
}

main=$(environment main)
traceloop=$(environment traceloop)

export CLOSEDLOOP_BIN="$binary"
export CLOSEDLOOP_ACCEPTANCE_PYTHON="$main"
export CLOSEDLOOP_ACCEPTANCE_TRACELOOP_PYTHON="$traceloop"
export CLOSEDLOOP_TEST_REQUIRE_RECEIVER=1
export CLOSEDLOOP_TEST_REQUIRE_ACCEPTANCE=1
cd "$client"
exec "$main" -m pytest -p no:cacheprovider "$@"
