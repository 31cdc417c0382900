#!/usr/bin/env bash
# Memory amplification on OTLP ingest: sends each input that is small on the wire and large
# once decoded to a fresh release `closedloop serve`, and prints the receiver's answers, its
# peak RSS (VmHWM) and its RSS right after and a few seconds after the request.
#
#   scripts/amplification.sh                 # the receiver and loadgen built from this tree
#   CLOSEDLOOP=/path/to/closedloop scripts/amplification.sh   # another receiver build
#
# ONLY=NAME runs one input (names as in the table). SERVER_TOML adds lines to the [server] table of the receiver's configuration (for example
# "max_decoded_in_flight_mib = 256"). Each input runs against its own receiver process, so each
# peak is that input's alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${CLOSEDLOOP:-}" || -z "${LOADGEN:-}" ]]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" \
        -p closedloop-cli -p closedloop-loadgen
fi
closedloop=${CLOSEDLOOP:-$root/target/release/closedloop}
loadgen=${LOADGEN:-$root/target/release/closedloop-loadgen}
grpc_port=${GRPC_PORT:-14317}
http_port=${HTTP_PORT:-14318}
settle_secs=${SETTLE_SECS:-3}

status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# name, then loadgen amplify arguments.
inputs=(
    "protobuf-1MiB|--input protobuf --count 500000"
    "protobuf-10^7|--input protobuf --count 10000000"
    "protobuf-gzip-10^7|--input protobuf-gzip --count 10000000"
    "json-gzip|--input json-gzip --depth ${JSON_DEPTH:-38} --count ${JSON_LEAVES:-200000}"
    "grpc-4MB|--input grpc --count 2000000"
    "grpc-4MBx3|--input grpc --count 2000000 --concurrency 3"
    # Each request within the per-request limits, together far over the budget in flight.
    "protobuf-fill-x32|--input protobuf --count 800000 --concurrency 32"
)

printf '%-20s %-28s %12s %12s %12s\n' input answers peak_MiB after_MiB settled_MiB
for entry in "${inputs[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    if [[ -n "${ONLY:-}" && "$name" != "$ONLY" ]]; then
        continue
    fi
    dir=$(mktemp -d)
    cat >"$dir/closedloop.toml" <<EOF
[server]
grpc_addr = "127.0.0.1:$grpc_port"
http_addr = "127.0.0.1:$http_port"
${SERVER_TOML:-}
[store]
path = "$dir/closedloop.db"
[export]
use_env = false
EOF
    "$closedloop" serve --config "$dir/closedloop.toml" >"$dir/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    answers=$("$loadgen" --json amplify --http-endpoint "http://127.0.0.1:$http_port" \
        --grpc-endpoint "http://127.0.0.1:$grpc_port" $args 2>&1 |
        python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["answers"]))' ||
        echo "receiver-died")
    if kill -0 "$pid" 2>/dev/null; then
        peak=$(status_kib "$pid" VmHWM)
        after=$(status_kib "$pid" VmRSS)
        sleep "$settle_secs"
        settled=$(status_kib "$pid" VmRSS)
        kill "$pid"
        wait "$pid" || true
        printf '%-20s %-28s %12d %12d %12d\n' "$name" "$answers" \
            $((peak / 1024)) $((after / 1024)) $((settled / 1024))
    else
        wait "$pid" || true
        printf '%-20s %-28s %12s %12s %12s\n' "$name" "$answers (exited)" - - -
    fi
    rm -rf "$dir"
done
