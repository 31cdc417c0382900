#!/usr/bin/env bash
# Headless Chromium and its WebDriver server for the browser tests.
#
#   scripts/browser.sh   install Debian's chromium and chromium-driver when /usr/bin/chromium or
#                        /usr/bin/chromedriver is missing, then print both versions
#
# Idempotent: with both present it installs nothing. Installing needs root; as another user
# it goes through sudo when sudo is there. The browser tests run /usr/bin/chromedriver, which
# starts /usr/bin/chromium headless with a fresh profile (crates/receiver/tests/support/browser.rs).
#
#   scripts/browser.sh && cargo test -p closedloop-receiver --test browser
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

die() {
    printf 'browser.sh: %s\n' "$*" >&2
    exit 1
}

[[ $# -eq 0 ]] || die "usage: scripts/browser.sh"

install_browser() {
    [[ -x $CHROMIUM && -x $CHROMEDRIVER ]] && return
    local -a as_root=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null ||
            die "$CHROMIUM or $CHROMEDRIVER is missing; install ${PACKAGES[*]} (as root: apt-get install -y ${PACKAGES[*]})"
        as_root=(sudo)
    fi
    printf 'browser.sh: installing %s\n' "${PACKAGES[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >&2 ||
        { "${as_root[@]}" apt-get update -q >&2 &&
            "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >&2; } ||
        die "cannot install ${PACKAGES[*]}"
    [[ -x $CHROMIUM && -x $CHROMEDRIVER ]] ||
        die "${PACKAGES[*]} installed, but $CHROMIUM or $CHROMEDRIVER is still missing"
}

install_browser
"$CHROMIUM" --version
"$CHROMEDRIVER" --version
