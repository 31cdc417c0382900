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
# (brought up to date with `cargo build -p closedloop-cli`).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
client="$root/clients/python"
requirements="$client/tests/acceptance"
envs="$root/target/py-clients"

# The binary under test: CLOSEDLOOP_BIN, else the workspace's debug build, brought up to date
# (a no-op after `cargo test --workspace`).
if [ -n "${CLOSEDLOOP_BIN:-}" ]; then
  binary=$CLOSEDLOOP_BIN
else
  (cd "$root" && cargo build --quiet -p closedloop-cli >&2)
  binary="$root/target/debug/closedloop"
fi

# Sets up the environment NAME from requirements-NAME.txt (recreated only when that file
# changed; the stamp is written once the install succeeded) with the client installed from
# the path, and sets `python` to its interpreter. Not run in a command substitution, so
# `set -e` holds inside it.
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
  # Built from a copy, so no build/ or egg-info is left in clients/python.
  local build="$envs/build-$name"
  rm -rf "$build"
  cp -r "$client" "$build"
  rm -rf "$build/build" "$build"/src/*.egg-info
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall "$build" >&2
  rm -rf "$build"
  python="$venv/bin/python"
}

mkdir -p "$envs"
environment main
main=$python
environment traceloop
traceloop=$python

export CLOSEDLOOP_BIN="$binary"
export CLOSEDLOOP_ACCEPTANCE_PYTHON="$main"
export CLOSEDLOOP_ACCEPTANCE_TRACELOOP_PYTHON="$traceloop"
export CLOSEDLOOP_TEST_REQUIRE_RECEIVER=1
export CLOSEDLOOP_TEST_REQUIRE_ACCEPTANCE=1
cd "$client"
exec "$main" -m pytest -p no:cacheprovider "$@"
