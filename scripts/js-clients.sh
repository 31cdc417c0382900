#!/usr/bin/env bash
# The JavaScript client's tests (clients/js) and the browser snippet's (clients/browser),
# with node's built-in test runner, against the real receiver binary and headless Chromium.
#
#   scripts/js-clients.sh
#
# `npm ci` runs only when clients/js/package-lock.json changed since the last install (a stamp
# in node_modules). The tests run target/debug/closedloop, built here with `cargo build -p
# closedloop-cli` (nothing to do after `cargo test --workspace`), unless CLOSEDLOOP_BIN names
# another binary; the browser test needs /usr/bin/chromium and /usr/bin/chromedriver
# (scripts/browser.sh) and is skipped without them unless CLOSEDLOOP_TEST_REQUIRE_BROWSER=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
client="$root/clients/js"
stamp="$client/node_modules/.package-lock.sha256"
want=$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)

die() {
    printf 'js-clients.sh: %s\n' "$*" >&2
    exit 1
}

[[ $# -eq 0 ]] || die "usage: scripts/js-clients.sh"
command -v node >/dev/null || die "node is missing (Node.js 20 or later)"
command -v npm >/dev/null || die "npm is missing"

if [[ -z ${CLOSEDLOOP_BIN:-} ]]; then
    (cd "$root" && cargo build --quiet -p closedloop-cli)
    export CLOSEDLOOP_BIN="$root/target/debug/closedloop"
fi
[[ -x $CLOSEDLOOP_BIN ]] || die "$CLOSEDLOOP_BIN is missing or not executable"

cd "$client"
if [[ ! -d node_modules || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    printf 'js-clients.sh: installing clients/js dependencies (npm ci)\n' >&2
    npm ci --no-audit --no-fund >&2
    echo "$want" > "$stamp"
fi

node --test test/*.test.js
