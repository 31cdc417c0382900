#!/usr/bin/env bash
# Ingest spans/s of two builds of the receiver, alternated under the same load on this machine
# (A, B, A, B, ...), each run on a fresh SQLite store. The machine is shared and noisy: only
# the ratio of the medians, measured in the same minutes, means anything.
#
#   scripts/compare-ingest.sh BEFORE/closedloop AFTER/closedloop [LOADGEN]
#
# Each build is `cargo build --release -p closedloop-cli -p closedloop-loadgen` of one tree.
# LOADGEN defaults to target/release/closedloop-loadgen. Settings (environment):
# COMPARE_ROUNDS (3), COMPARE_DURATION_SECS (10), COMPARE_CONCURRENCY (64), COMPARE_BATCH (100).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

before=${1:?usage: compare-ingest.sh BEFORE_BINARY AFTER_BINARY [LOADGEN]}
after=${2:?usage: compare-ingest.sh BEFORE_BINARY AFTER_BINARY [LOADGEN]}
loadgen=${3:-$root/target/release/closedloop-loadgen}
rounds=${COMPARE_ROUNDS:-3}
duration=${COMPARE_DURATION_SECS:-10}
concurrency=${COMPARE_CONCURRENCY:-64}
batch=${COMPARE_BATCH:-100}

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# run NAME BINARY ROUND: prints spans/s of one run.
run() {
  local name=$1 binary=$2 round=$3 grpc http
  grpc=$(free_port)
  http=$(free_port)
  "$binary" serve --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" \
    --store-path "$work/$name-$round/closedloop.db" >"$work/$name-$round.log" 2>&1 &
  server_pid=$!
  wait_port "$grpc"
  "$loadgen" --json run --endpoint "http://127.0.0.1:$grpc" --duration-secs "$duration" \
    --warmup-secs 0 --concurrency "$concurrency" --batch-size "$batch" >"$work/load.json"
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["spans_per_sec"]))' \
    "$work/load.json"
}

results=()
for round in $(seq 1 "$rounds"); do
  a=$(run before "$before" "$round")
  b=$(run after "$after" "$round")
  echo "round $round: before $a spans/s, after $b spans/s" >&2
  results+=("$a $b")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
before = statistics.median(r[0] for r in rows)
after = statistics.median(r[1] for r in rows)
print(f"median before {before:.0f} spans/s, after {after:.0f} spans/s: after/before = {after / before:.3f}")
'
