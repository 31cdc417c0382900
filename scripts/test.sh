#!/usr/bin/env bash
# The whole closedloop test suite: formatting, lints, the Python peers the interoperability
# tests need, every test, and the docs. The README's second command and CI both run this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "Python test peers (OpenTelemetry SDK, rotel)"
CLOSEDLOOP_TEST_PYTHON=$(scripts/python-env.sh)
export CLOSEDLOOP_TEST_PYTHON

step "Arize Phoenix for the backend test (scripts/phoenix-env.sh)"
CLOSEDLOOP_TEST_PHOENIX_PYTHON=$(scripts/phoenix-env.sh)
export CLOSEDLOOP_TEST_PHOENIX_PYTHON
export CLOSEDLOOP_TEST_REQUIRE_PHOENIX=1

step "The bundled embedding model (scripts/embedding-model.sh)"
CLOSEDLOOP_EMBEDDING_MODEL_DIR=$(scripts/embedding-model.sh)
export CLOSEDLOOP_EMBEDDING_MODEL_DIR
export CLOSEDLOOP_TEST_REQUIRE_MODEL=1

step "PostgreSQL for the tests (scripts/postgres.sh)"
postgres_dir=$(mktemp -d)
# The server runs as the postgres user when this runs as root: it must reach its directory.
chmod 755 "$postgres_dir"
trap 'scripts/postgres.sh stop "$postgres_dir/pg"; rm -rf "$postgres_dir"' EXIT
eval "$(scripts/postgres.sh start "$postgres_dir/pg")"
export CLOSEDLOOP_TEST_POSTGRES_URL
export CLOSEDLOOP_TEST_REQUIRE_POSTGRES=1

step "Headless Chromium for the browser tests (scripts/browser.sh)"
scripts/browser.sh
export CLOSEDLOOP_TEST_REQUIRE_BROWSER=1

step "cargo test --workspace"
cargo test --workspace

step "JavaScript client and browser snippet (scripts/js-clients.sh)"
scripts/js-clients.sh

step "Python client and instrumentation acceptance tests (scripts/python-clients.sh)"
scripts/python-clients.sh -q

step "Fuzz every target for 20000 inputs (scripts/fuzz.sh)"
scripts/fuzz.sh

step "cargo doc --workspace --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

printf '\nAll checks passed.\n'
