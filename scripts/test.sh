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

step "cargo test --workspace"
cargo test --workspace

step "Fuzz every target for 20000 inputs (scripts/fuzz.sh)"
scripts/fuzz.sh

step "cargo doc --workspace --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

printf '\nAll checks passed.\n'
