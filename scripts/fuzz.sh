#!/usr/bin/env bash
# Fuzzes what closedloop reads from clients: OTLP bodies (protobuf, JSON, gzip), feedback API
# bodies, feedback tokens and the config file. The targets are in fuzz/.
#
#   scripts/fuzz.sh                      every target for FUZZ_RUNS inputs (default 20000)
#   FUZZ_SECONDS=600 scripts/fuzz.sh     every target for that many seconds
#   scripts/fuzz.sh otlp_json config     only these targets
#
# cargo-fuzz is installed from crates.io into target/tools on first use. Everything the fuzzer
# builds and writes stays in target/fuzz: the build, the corpus it grows (kept between runs),
# and artifacts/<target>/ with the input of any crash, which `cargo fuzz run <target> <file>`
# replays. The run stops at the first failing target and exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
tools="$PWD/target/tools"
work="$PWD/target/fuzz"

if [[ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    cargo install --locked --root "$tools" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
# cargo-fuzz passes the sanitizer and coverage flags as `-Z` options, which only a nightly
# compiler accepts; RUSTC_BOOTSTRAP=1 lets the stable one, whose standard library ships the
# sanitizer runtimes, accept them too.
export RUSTC_BOOTSTRAP=1

# The same flags for build and run, so that run does not rebuild. Address sanitizer covers
# the C and unsafe code beneath the receiver (SQLite, zlib, hashing); 16 codegen units keep
# the build short on small machines.
build_flags=(--target-dir "$work/build" --codegen-units 16 --sanitizer address)

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [[ -n "${FUZZ_SECONDS:-}" ]]; then
    budget=(-max_total_time="$FUZZ_SECONDS")
else
    budget=(-runs="${FUZZ_RUNS:-20000}")
fi

python3 fuzz/seeds.py "$work/seeds"
cargo fuzz build "${build_flags[@]}"

for target in "${targets[@]}"; do
    printf '\n==> fuzz %s (%s)\n' "$target" "${budget[*]}"
    mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
    # New inputs go to the first corpus directory; the seeds are read only.
    cargo fuzz run "${build_flags[@]}" "$target" "$work/corpus/$target" "$work/seeds/$target" -- \
        "${budget[@]}" -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10
done
