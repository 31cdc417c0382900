#!/usr/bin/env bash
# Benchmarks of the closedloop receiver against real peers, measured side by side in one run on
# one machine. Not part of the test suite (it takes 20 to 30 minutes, most of it waiting for
# Phoenix to write what it acknowledged); results go to target/bench/ and the numbers quoted in
# BENCHMARKS.md come from its summary.
#
#   scripts/bench.sh
#
# Measures, with the same generated load (closedloop-loadgen: realistic LLM traces over
# OTLP/gRPC, pre-encoded) and the same duration:
#   1. the closedloop receiver (release, indexing and join on, temporary store), twice;
#      beside each SQLite run the same on PostgreSQL (scripts/postgres.sh, a fresh database
#      per run): one receiver, then two receivers on one database with one loadgen each
#      (half the requests in flight each);
#   2. rotel-agent with --exporter blackhole (installed from PyPI by scripts/python-env.sh), twice;
#   3. Arize Phoenix (`phoenix serve`, installed from PyPI by scripts/phoenix-env.sh, telemetry
#      and downloads off, a fresh SQLite database in the run's temporary directory), twice.
#      Phoenix acknowledges a request once its spans are queued and writes them to SQLite
#      later, so beside the acknowledged rate the script counts the rows of its `spans` table
#      after the load until the count has not grown for BENCH_PHOENIX_SETTLE_SECS: the landed
#      spans, per second of the load and per second until the last one landed;
#   4. the decode-only ceiling: prost decoding the same requests on one thread, twice;
#   5. feedback accepted -> failure record at a local OTLP sink, p50/p99, idle and under 50%
#      of closedloop's measured maximum ingest rate, on SQLite and on PostgreSQL;
#   6. store scaling: join latency and bytes on disk per indexed response at 100K and 10M
#      indexed responses (stops early, and says so, when the time budget runs out).
# Servers' CPU is user+sys time from /proc/<pid>/stat over the run (Phoenix's until its last
# span landed, its child processes included), peak RSS is VmHWM.
#
# Settings (environment): BENCH_DURATION_SECS (20), BENCH_CONCURRENCY (64), BENCH_BATCH (100),
# BENCH_SCALE_CHECKPOINTS (100000,10000000), BENCH_SCALE_BUDGET_SECS (540), BENCH_SKIP_SCALE=1,
# BENCH_SKIP_POSTGRES=1 (SQLite only), BENCH_SKIP_PHOENIX=1, BENCH_PHOENIX_SETTLE_SECS (10),
# BENCH_PHOENIX_DRAIN_SECS (900: how long to wait for Phoenix's queue to drain after the load).
# All traffic stays on 127.0.0.1 (Phoenix's gRPC server listens on every interface; the load
# reaches it on 127.0.0.1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

duration=${BENCH_DURATION_SECS:-20}
concurrency=${BENCH_CONCURRENCY:-64}
batch=${BENCH_BATCH:-100}
checkpoints=${BENCH_SCALE_CHECKPOINTS:-100000,10000000}
budget=${BENCH_SCALE_BUDGET_SECS:-540}
phoenix_settle=${BENCH_PHOENIX_SETTLE_SECS:-10}
phoenix_drain=${BENCH_PHOENIX_DRAIN_SECS:-900}

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo build --release -p closedloop-cli -p closedloop-loadgen"
cargo build --release -p closedloop-cli -p closedloop-loadgen
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release"

step "rotel-agent (scripts/python-env.sh)"
python=$(scripts/python-env.sh)
rotel=$(ls "$(dirname "$python")"/../lib/python3.*/site-packages/rotel/rotel-agent | head -n1)
"$rotel" version >&2

phoenix_python=
if [ "${BENCH_SKIP_PHOENIX:-0}" != 1 ]; then
  step "Arize Phoenix (scripts/phoenix-env.sh)"
  phoenix_python=$(scripts/phoenix-env.sh)
  phoenix_version=$("$phoenix_python" -c 'from importlib.metadata import version; print(version("arize-phoenix"))')
  echo "arize-phoenix $phoenix_version" >&2
fi

out="$target_dir/bench"
mkdir -p "$out"
rm -f "$out"/*.json
work=$(mktemp -d)
# The PostgreSQL server's directory lies in it: the `postgres` user must reach it.
chmod 755 "$work"
server_pid=
second_pid=
postgres=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ -n "$second_pid" ]; then kill "$second_pid" 2>/dev/null || true; fi
  if [ -n "$postgres" ]; then "$root/scripts/postgres.sh" stop "$work/postgres" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${BENCH_SKIP_POSTGRES:-0}" != 1 ]; then
  step "PostgreSQL (scripts/postgres.sh)"
  eval "$("$root/scripts/postgres.sh" start "$work/postgres")"
  postgres=$CLOSEDLOOP_TEST_POSTGRES_URL
fi
# pg_config FILE NAME: a receiver configuration on a fresh PostgreSQL database NAME.
pg_config() {
  psql -X -q -v ON_ERROR_STOP=1 -d "$postgres" -c "CREATE DATABASE $2" >&2
  printf '[store]\nengine = "postgres"\nurl = "%s/%s"\n' "${postgres%/*}" "$2" >"$1"
}
# user+sys clock ticks of the PostgreSQL server (postmaster and its backends), 0 without one.
db_ticks() {
  local postmaster pid total=0
  [ -n "$postgres" ] || { echo 0; return; }
  postmaster=$(head -n1 "$work/postgres/data/postmaster.pid")
  for pid in "$postmaster" $(pgrep -P "$postmaster"); do
    total=$(( total + $(cpu_ticks "$pid" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
# user+sys clock ticks of a process (fields 14 and 15; the name field holds no spaces here).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
clock_ticks=$(getconf CLK_TCK)
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
stop_second() {
  kill -TERM "$second_pid" 2>/dev/null || true
  wait "$second_pid" 2>/dev/null || true
  second_pid=
}

# ingest NAME RUN: one server under the load; writes $out/ingest-NAME-RUN.json.
ingest() {
  local name=$1 run=$2 grpc http
  grpc=$(free_port)
  http=$(free_port)
  case $name in
    closedloop)
      "$bin/closedloop" serve --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" \
        --store-path "$work/$name-$run/closedloop.db" >"$work/$name-$run.log" 2>&1 &
      ;;
    closedloop-postgres)
      pg_config "$work/$name-$run.toml" "bench_ingest_$run"
      "$bin/closedloop" --config "$work/$name-$run.toml" serve --grpc-addr "127.0.0.1:$grpc" \
        --http-addr "127.0.0.1:$http" >"$work/$name-$run.log" 2>&1 &
      ;;
    rotel)
      "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$http" \
        --exporter blackhole --pid-file "$work/rotel-$run.pid" >"$work/$name-$run.log" 2>&1 &
      ;;
  esac
  server_pid=$!
  wait_port "$grpc"
  local before after started ended db_before db_after
  before=$(cpu_ticks "$server_pid")
  db_before=$(db_ticks)
  started=$(date +%s.%N)
  "$bin/closedloop-loadgen" --json run --endpoint "http://127.0.0.1:$grpc" \
    --duration-secs "$duration" --warmup-secs 0 --concurrency "$concurrency" \
    --batch-size "$batch" >"$work/load.json"
  ended=$(date +%s.%N)
  after=$(cpu_ticks "$server_pid")
  db_after=$(db_ticks)
  local rss
  rss=$(peak_rss_kib "$server_pid")
  stop_server
  python3 - "$work/load.json" "$out/ingest-$name-$run.json" "$name" "$run" \
    "$(( after - before ))" "$clock_ticks" "$started" "$ended" "$rss" "$(( db_after - db_before ))" <<'EOF'
import json, sys
src, dst, name, run, ticks, hz, started, ended, rss, db_ticks = sys.argv[1:]
report = json.load(open(src))
cpu = int(ticks) / int(hz)
wall = float(ended) - float(started)
report.update(server=name, run=int(run), server_cpu_secs=cpu, server_wall_secs=wall,
              server_cores=cpu / wall, server_peak_rss_mib=int(rss) / 1024,
              spans_per_core_sec=report["spans_accepted"] / cpu if cpu else None)
if name.startswith("closedloop-postgres"):
    # The database server's CPU, which the receivers' own does not include.
    report.update(database_cores=int(db_ticks) / int(hz) / wall)
json.dump(report, open(dst, "w"), indent=2)
print(f"{name} run {run}: {report['spans_per_sec']:.0f} spans/s, {cpu / wall:.2f} cores, "
      f"{report['spans_accepted'] / cpu if cpu else 0:.0f} spans/s per core, "
      f"peak RSS {int(rss) / 1024:.0f} MiB, p99 {report['latency']['p99_ms']:.1f} ms, "
      f"failed requests {report['requests_failed']}", file=sys.stderr)
EOF
}

# ingest_pair RUN: two receivers on one PostgreSQL database, one loadgen each with half the
# requests in flight; writes $out/ingest-closedloop-postgres-x2-RUN.json (spans and CPU summed).
ingest_pair() {
  local run=$1 name=closedloop-postgres-x2 grpc_a http_a grpc_b http_b half
  half=$(( (concurrency + 1) / 2 ))
  grpc_a=$(free_port)
  http_a=$(free_port)
  grpc_b=$(free_port)
  http_b=$(free_port)
  pg_config "$work/$name-$run.toml" "bench_pair_$run"
  "$bin/closedloop" --config "$work/$name-$run.toml" serve --grpc-addr "127.0.0.1:$grpc_a" \
    --http-addr "127.0.0.1:$http_a" >"$work/$name-$run-a.log" 2>&1 &
  server_pid=$!
  "$bin/closedloop" --config "$work/$name-$run.toml" serve --grpc-addr "127.0.0.1:$grpc_b" \
    --http-addr "127.0.0.1:$http_b" >"$work/$name-$run-b.log" 2>&1 &
  second_pid=$!
  wait_port "$grpc_a"
  wait_port "$grpc_b"
  local before after started ended load_a load_b db_before db_after
  before=$(( $(cpu_ticks "$server_pid") + $(cpu_ticks "$second_pid") ))
  db_before=$(db_ticks)
  started=$(date +%s.%N)
  "$bin/closedloop-loadgen" --json run --endpoint "http://127.0.0.1:$grpc_a" \
    --duration-secs "$duration" --warmup-secs 0 --concurrency "$half" \
    --batch-size "$batch" >"$work/load-a.json" &
  load_a=$!
  "$bin/closedloop-loadgen" --json run --endpoint "http://127.0.0.1:$grpc_b" \
    --duration-secs "$duration" --warmup-secs 0 --concurrency "$half" \
    --batch-size "$batch" --seed 43 >"$work/load-b.json" &
  load_b=$!
  wait "$load_a"
  wait "$load_b"
  ended=$(date +%s.%N)
  after=$(( $(cpu_ticks "$server_pid") + $(cpu_ticks "$second_pid") ))
  db_after=$(db_ticks)
  local rss
  rss=$(( $(peak_rss_kib "$server_pid") + $(peak_rss_kib "$second_pid") ))
  stop_server
  stop_second
  python3 - "$work/load-a.json" "$work/load-b.json" "$out/ingest-$name-$run.json" "$name" "$run" \
    "$(( after - before ))" "$clock_ticks" "$started" "$ended" "$rss" "$(( db_after - db_before ))" <<'EOF'
import json, sys
src_a, src_b, dst, name, run, ticks, hz, started, ended, rss, db_ticks = sys.argv[1:]
a, b = json.load(open(src_a)), json.load(open(src_b))
report = dict(a)
for key in ("spans_sent", "spans_accepted", "spans_per_sec", "requests_failed", "generator_cpu_secs"):
    if a.get(key) is not None and b.get(key) is not None:
        report[key] = a[key] + b[key]
# Each loadgen's percentiles cover its half of the requests: the worse of the two is kept.
report["latency"] = {key: max(a["latency"][key], b["latency"][key]) for key in a["latency"]}
cpu = int(ticks) / int(hz)
wall = float(ended) - float(started)
report.update(server=name, run=int(run), receivers=2, server_cpu_secs=cpu, server_wall_secs=wall,
              server_cores=cpu / wall, server_peak_rss_mib=int(rss) / 1024,
              spans_per_core_sec=report["spans_accepted"] / cpu if cpu else None)
if name.startswith("closedloop-postgres"):
    # The database server's CPU, which the receivers' own does not include.
    report.update(database_cores=int(db_ticks) / int(hz) / wall)
json.dump(report, open(dst, "w"), indent=2)
print(f"{name} run {run}: {report['spans_per_sec']:.0f} spans/s, {cpu / wall:.2f} cores (both), "
      f"{report['spans_accepted'] / cpu if cpu else 0:.0f} spans/s per core, "
      f"peak RSS {int(rss) / 1024:.0f} MiB (sum), p99 {report['latency']['p99_ms']:.1f} ms, "
      f"failed requests {report['requests_failed']}", file=sys.stderr)
EOF
}

# tree_sum MEASURE PID: MEASURE (cpu_ticks, peak_rss_kib) of a process plus its child processes.
tree_sum() {
  local pid total=0
  for pid in "$2" $(pgrep -P "$2"); do
    total=$(( total + $("$1" "$pid" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}

# ingest_phoenix RUN: Arize Phoenix under the load; writes $out/ingest-phoenix-RUN.json with
# what the load generator saw acknowledged and what landed in Phoenix's database.
ingest_phoenix() {
  local run=$1 name=phoenix grpc http dir log
  grpc=$(free_port)
  http=$(free_port)
  dir="$work/phoenix-$run"
  log="$work/phoenix-$run.log"
  mkdir -p "$dir"
  # Telemetry off, no downloads at startup, nothing exported elsewhere; the database is the
  # default SQLite one, named here so that the count below reads the same file.
  env -u PHOENIX_COLLECTOR_ENDPOINT -u OTEL_EXPORTER_OTLP_ENDPOINT \
    PHOENIX_TELEMETRY_ENABLED=false PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
    PHOENIX_WORKING_DIR="$dir" PHOENIX_SQL_DATABASE_URL="sqlite:///$dir/phoenix.db" \
    PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$http" PHOENIX_GRPC_PORT="$grpc" \
    "$phoenix_python" -m phoenix.server.main serve >"$log" 2>&1 &
  server_pid=$!
  # Phoenix migrates its database before it answers; on a busy machine that takes a while.
  if ! python3 - "$http" "$server_pid" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1:]
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("Phoenix exited before it answered /healthz")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.25)
sys.exit("Phoenix did not answer /healthz within 300 s")
EOF
  then
    tail -n 40 "$log" >&2
    return 1
  fi
  wait_port "$grpc"
  local before after_load started ended
  before=$(tree_sum cpu_ticks "$server_pid")
  started=$(date +%s.%N)
  "$bin/closedloop-loadgen" --json run --endpoint "http://127.0.0.1:$grpc" \
    --duration-secs "$duration" --warmup-secs 0 --concurrency "$concurrency" \
    --batch-size "$batch" >"$work/load.json"
  ended=$(date +%s.%N)
  after_load=$(tree_sum cpu_ticks "$server_pid")
  # Phoenix answers a request once its spans are queued and writes the queue to SQLite in
  # batches afterwards: count the rows until the count has held for the settle time, and note
  # when it last grew and Phoenix's CPU ticks then.
  step "phoenix run $run: waiting for its queue to drain (count unchanged for $phoenix_settle s, at most $phoenix_drain s)"
  python3 - "$dir/phoenix.db" "$server_pid" "$phoenix_settle" "$phoenix_drain" >"$work/landed.json" <<'EOF'
import json, os, sqlite3, sys, time
db, pid, settle, limit = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])


def tree(pid):
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    pids += tree(child)
        except OSError:
            pass
    return pids


def ticks():
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def count(connection):
    return connection.execute("SELECT count(*) FROM spans").fetchone()[0]


connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
first = count(connection)
last, last_at, last_ticks = first, time.time(), ticks()
polled_from = quiet_since = time.monotonic()
drained = False
while True:
    now = time.monotonic()
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("Phoenix exited while its queue drained")
    current = count(connection)
    if current > last:
        last, last_at, last_ticks = current, time.time(), ticks()
        quiet_since = now
    elif now - quiet_since >= settle:
        drained = True
        break
    if now - polled_from >= limit:
        break
    time.sleep(0.5)
print(json.dumps(dict(landed_at_load_end=first, landed=last, last_landed_at=last_at,
                      ticks_at_last_landed=last_ticks, drained=drained)))
EOF
  local rss
  rss=$(tree_sum peak_rss_kib "$server_pid")
  stop_server
  python3 - "$work/load.json" "$work/landed.json" "$out/ingest-$name-$run.json" "$name" "$run" \
    "$before" "$after_load" "$clock_ticks" "$started" "$ended" "$rss" "$phoenix_version" \
    "$(grep -c 'Span insertion failed' "$log" || true)" <<'EOF'
import json, sys
(src, landed_src, dst, name, run, before, after_load, hz, started, ended, rss, version,
 insert_errors) = sys.argv[1:]
report = json.load(open(src))
landed = json.load(open(landed_src))
hz = int(hz)
cpu = (int(after_load) - int(before)) / hz
cpu_landed = (landed["ticks_at_last_landed"] - int(before)) / hz
wall = float(ended) - float(started)
until_landed = max(landed["last_landed_at"], float(ended)) - float(started)
report.update(server=name, run=int(run), version=version, server_cpu_secs=cpu,
              server_wall_secs=wall, server_cores=cpu / wall,
              server_peak_rss_mib=int(rss) / 1024,
              spans_per_core_sec=report["spans_accepted"] / cpu if cpu else None,
              # What the database holds once the queue drained (or the wait ran out).
              spans_landed=landed["landed"],
              spans_landed_at_load_end=landed["landed_at_load_end"],
              drained=landed["drained"],
              insert_errors_logged=int(insert_errors or 0),
              landed_spans_per_sec_of_load=landed["landed"] / report["elapsed_secs"],
              secs_until_last_landed=until_landed,
              landed_spans_per_sec_until_last=landed["landed"] / until_landed,
              server_cpu_secs_until_last_landed=cpu_landed,
              landed_spans_per_core_sec=landed["landed"] / cpu_landed if cpu_landed else None)
json.dump(report, open(dst, "w"), indent=2)
print(f"{name} run {run}: acknowledged {report['spans_per_sec']:.0f} spans/s "
      f"({report['spans_accepted']} spans, failed requests {report['requests_failed']}); "
      f"landed {landed['landed']} spans ({landed['landed_at_load_end']} by the load's end"
      f"{'' if landed['drained'] else ', still growing when the wait ran out'}): "
      f"{report['landed_spans_per_sec_of_load']:.0f} spans/s over the load's "
      f"{report['elapsed_secs']:.1f} s, {report['landed_spans_per_sec_until_last']:.0f} spans/s "
      f"over the {until_landed:.1f} s until the last landed; {cpu / wall:.2f} cores during the "
      f"load, {report['landed_spans_per_core_sec'] or 0:.0f} landed spans per CPU second, "
      f"peak RSS {int(rss) / 1024:.0f} MiB, p99 {report['latency']['p99_ms']:.1f} ms",
      file=sys.stderr)
EOF
}

ceiling() {
  step "decode-only ceiling, run $1"
  "$bin/closedloop-loadgen" --json decode-ceiling --duration-secs 10 --batch-size "$batch" \
    >"$out/ceiling-$1.json"
}

ceiling 1
for run in 1 2; do
  for name in closedloop rotel; do
    step "ingest: $name, run $run ($duration s, $concurrency requests in flight, $batch spans each)"
    ingest "$name" "$run"
  done
  if [ -n "$phoenix_python" ]; then
    step "ingest: phoenix, run $run ($duration s, $concurrency requests in flight, $batch spans each)"
    ingest_phoenix "$run"
  fi
  if [ -n "$postgres" ]; then
    step "ingest: closedloop on PostgreSQL, run $run ($duration s, $concurrency requests in flight, $batch spans each)"
    ingest closedloop-postgres "$run"
    step "ingest: two closedloop receivers on one PostgreSQL, run $run ($duration s, $concurrency requests in flight in all)"
    ingest_pair "$run"
  fi
done
ceiling 2

step "feedback -> failure record latency, idle and under 50% of closedloop's maximum"
rate=$(python3 -c '
import json, sys
print(0.5 * max(json.load(open(path))["spans_per_sec"] for path in sys.argv[1:]))
' "$out"/ingest-closedloop-[0-9]*.json)
grpc=$(free_port)
http=$(free_port)
sink=$(free_port)
printf '[export]\nprotocol = "grpc"\n' >"$work/latency.toml"
"$bin/closedloop" --config "$work/latency.toml" serve --grpc-addr "127.0.0.1:$grpc" \
  --http-addr "127.0.0.1:$http" --store-path "$work/latency/closedloop.db" \
  --export-endpoint "http://127.0.0.1:$sink" >"$work/latency.log" 2>&1 &
server_pid=$!
wait_port "$grpc"
"$bin/closedloop-loadgen" --json feedback-latency --endpoint "http://127.0.0.1:$grpc" \
  --sink-addr "127.0.0.1:$sink" --probes 200 --interval-ms 20 --load-rate "$rate" \
  --load-concurrency "$concurrency" --batch-size "$batch" >"$out/latency.json"
stop_server
if [ -n "$postgres" ]; then
  step "feedback -> failure record latency on PostgreSQL, idle and under 50% of its maximum"
  rate=$(python3 -c '
import json, sys
print(0.5 * max(json.load(open(path))["spans_per_sec"] for path in sys.argv[1:]))
' "$out"/ingest-closedloop-postgres-[0-9]*.json)
  grpc=$(free_port)
  http=$(free_port)
  sink=$(free_port)
  pg_config "$work/latency-postgres.toml" bench_latency
  printf '\n[export]\nprotocol = "grpc"\n' >>"$work/latency-postgres.toml"
  "$bin/closedloop" --config "$work/latency-postgres.toml" serve --grpc-addr "127.0.0.1:$grpc" \
    --http-addr "127.0.0.1:$http" --export-endpoint "http://127.0.0.1:$sink" \
    >"$work/latency-postgres.log" 2>&1 &
  server_pid=$!
  wait_port "$grpc"
  "$bin/closedloop-loadgen" --json feedback-latency --endpoint "http://127.0.0.1:$grpc" \
    --sink-addr "127.0.0.1:$sink" --probes 200 --interval-ms 20 --load-rate "$rate" \
    --load-concurrency "$concurrency" --batch-size "$batch" >"$out/latency-postgres.json"
  stop_server
fi

if [ "${BENCH_SKIP_SCALE:-0}" != 1 ]; then
  step "store scaling: $checkpoints indexed responses (budget $budget s)"
  "$bin/closedloop-loadgen" --json store-scale --dir "$work/scale" --checkpoints "$checkpoints" \
    --budget-secs "$budget" >"$out/scale.json"
fi

step "summary"
python3 "$root/scripts/bench_summary.py" "$out" | tee "$out/summary.md"
if [ -n "$phoenix_python" ]; then
  python3 - "$out" <<'EOF' | tee -a "$out/summary.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
load = lambda pattern: [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, pattern)))]
phoenix = load("ingest-phoenix-*.json")
closedloop = load("ingest-closedloop-[0-9]*.json")
print(f"\nArize Phoenix {phoenix[0]['version']} (SQLite): acknowledged is what the load generator "
      "was answered OK for; landed is the rows in Phoenix's `spans` table once the count had "
      "not grown for the settle time.\n")
print("| run | acknowledged spans/s | failed requests | spans acknowledged | spans landed "
      "| landed by the load's end | landed spans/s over the load | s until the last landed "
      "| landed spans/s until the last landed | cores during the load "
      "| landed spans per CPU second (load and drain) | peak RSS MiB | p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in phoenix:
    drained = "" if r["drained"] else " (still growing when the wait ran out)"
    print(f"| {r['run']} | {r['spans_per_sec']:.0f} | {r['requests_failed']} | "
          f"{r['spans_accepted']} | {r['spans_landed']}{drained} | {r['spans_landed_at_load_end']} | "
          f"{r['landed_spans_per_sec_of_load']:.0f} | {r['secs_until_last_landed']:.1f} | "
          f"{r['landed_spans_per_sec_until_last']:.0f} | {r['server_cores']:.2f} | "
          f"{r['landed_spans_per_core_sec'] or 0:.0f} | {r['server_peak_rss_mib']:.0f} | "
          f"{r['latency']['p99_ms']:.1f} |")
median = lambda values: statistics.median(values) if values else float("nan")
cl_rate = median([r["spans_per_sec"] for r in closedloop])
cl_core = median([r["spans_per_core_sec"] for r in closedloop])
# closedloop answers a request after the commit that holds its rows: acknowledged is landed.
print("\n| ratio (medians; closedloop's acknowledged spans are committed) | value |")
print("|---|---|")
for label, key, base in (
        ("closedloop / Phoenix landed, spans/s over the load", "landed_spans_per_sec_of_load", cl_rate),
        ("closedloop / Phoenix landed, spans/s until the last landed", "landed_spans_per_sec_until_last", cl_rate),
        ("closedloop / Phoenix landed, spans per CPU second", "landed_spans_per_core_sec", cl_core),
        ("closedloop / Phoenix acknowledged, spans/s", "spans_per_sec", cl_rate),
        ("closedloop / Phoenix acknowledged, spans/s per core during the load", "spans_per_core_sec", cl_core)):
    value = median([r[key] for r in phoenix if r.get(key)])
    print(f"| {label} | {base / value:.1f}x |" if value else f"| {label} | nothing landed |")
EOF
fi
