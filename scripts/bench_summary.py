#!/usr/bin/env python3
"""Prints the Markdown summary of one scripts/bench.sh run from the JSON reports it wrote."""

import glob
import json
import os
import statistics
import sys

out = sys.argv[1]


def load(pattern):
    return [json.load(open(path)) for path in sorted(glob.glob(os.path.join(out, pattern)))]


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return f"{os.cpu_count()} CPUs ({model}), {mem_kib / 1024 / 1024:.1f} GiB memory"


print(f"Machine: {machine()}\n")

ingest = load("ingest-*.json")
ceilings = load("ceiling-*.json")
by_server = {}
for report in ingest:
    by_server.setdefault(report["server"], []).append(report)

print("| server | run | spans/s | CPU cores used | spans/s per core | peak RSS MiB | p50 ms | p99 ms | failed requests |")
print("|---|---|---|---|---|---|---|---|---|")
for name, reports in by_server.items():
    for r in reports:
        print(f"| {name} | {r['run']} | {r['spans_per_sec']:.0f} | {r['server_cores']:.2f} | "
              f"{r['spans_per_core_sec']:.0f} | {r['server_peak_rss_mib']:.0f} | "
              f"{r['latency']['p50_ms']:.1f} | {r['latency']['p99_ms']:.1f} | {r['requests_failed']} |")
for i, c in enumerate(ceilings, 1):
    print(f"| decode-only ceiling (1 thread) | {i} | {c['spans_per_sec']:.0f} | 1.00 | "
          f"{c['spans_per_cpu_sec'] or c['spans_per_sec']:.0f} | | | | |")


def median(values):
    return statistics.median(values) if values else float("nan")


cl = by_server.get("closedloop", [])
rt = by_server.get("rotel", [])
cl_rate = median([r["spans_per_sec"] for r in cl])
rt_rate = median([r["spans_per_sec"] for r in rt])
cl_core = median([r["spans_per_core_sec"] for r in cl])
rt_core = median([r["spans_per_core_sec"] for r in rt])
ceil_rate = median([c["spans_per_cpu_sec"] or c["spans_per_sec"] for c in ceilings])
if ingest:
    r = ingest[0]
    print(f"\nLoad: {r['spans_per_request']:.1f} spans/request, {r['bytes_per_span']:.0f} B/span; "
          "medians of the runs below.\n")
print("| ratio | value |")
print("|---|---|")
print(f"| closedloop / rotel, spans/s | {cl_rate / rt_rate:.2f}x |")
print(f"| closedloop / rotel, spans/s per core | {cl_core / rt_core:.2f}x |")
print(f"| closedloop / decode-only ceiling, spans/s per core | {cl_core / ceil_rate:.2f}x |")
print(f"| closedloop / decode-only ceiling, spans/s (ceiling on 1 core) | {cl_rate / ceil_rate:.2f}x |")
print(f"| rotel / decode-only ceiling, spans/s per core | {rt_core / ceil_rate:.2f}x |")
generator = [r for r in ingest if r.get("generator_cpu_secs")]
if generator:
    spans_per_cpu = median([r["spans_sent"] / r["generator_cpu_secs"] for r in generator])
    print(f"| generator's own cost, spans/s per core it uses | {spans_per_cpu:.0f} |")

pg = by_server.get("closedloop-postgres", [])
pg2 = by_server.get("closedloop-postgres-x2", [])
if pg or pg2:
    pg_rate = median([r["spans_per_sec"] for r in pg])
    pg2_rate = median([r["spans_per_sec"] for r in pg2])
    pg_core = median([r["spans_per_core_sec"] for r in pg])
    pg2_core = median([r["spans_per_core_sec"] for r in pg2])
    print("\nPostgreSQL (scripts/postgres.sh: one local server with the test settings, fsync and "
          "synchronous_commit off) against SQLite (synchronous = full), same run, medians:\n")
    print("| ratio | value |")
    print("|---|---|")
    print(f"| PostgreSQL, 1 receiver / SQLite, spans/s | {pg_rate / cl_rate:.2f}x |")
    print(f"| PostgreSQL, 2 receivers / SQLite, spans/s | {pg2_rate / cl_rate:.2f}x |")
    print(f"| PostgreSQL, 2 receivers / 1 receiver, spans/s | {pg2_rate / pg_rate:.2f}x |")
    print(f"| PostgreSQL, 1 receiver / SQLite, spans/s per receiver core | {pg_core / cl_core:.2f}x |")
    print(f"| PostgreSQL, 2 receivers / SQLite, spans/s per receiver core | {pg2_core / cl_core:.2f}x |")
    for label, reports in (("1 receiver", pg), ("2 receivers", pg2)):
        cores = median([r["database_cores"] for r in reports if "database_cores" in r])
        print(f"| PostgreSQL server's CPU cores used, {label} | {cores:.2f} |")


def latency_table(title, report):
    print(f"\n| {title} | p50 ms | p99 ms | max ms | probes | lost |")
    print("|---|---|---|---|---|---|")
    for label, phase in (("idle", report["idle"]), ("under load", report.get("loaded"))):
        if not phase:
            continue
        if phase.get("load"):
            load_report = phase["load"]
            label += (f" ({load_report['spans_per_sec']:.0f} spans/s achieved, "
                      f"target {load_report['target_spans_per_sec']:.0f})")
        p = phase["latency"]
        print(f"| {label} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {p['max_ms']:.2f} | "
              f"{p['count']} | {phase['lost']} |")


latency = load("latency.json")
if latency:
    latency_table("feedback -> failure record at the sink", latency[0])
latency_pg = load("latency-postgres.json")
if latency_pg:
    latency_table("feedback -> failure record at the sink, PostgreSQL", latency_pg[0])
if latency and latency_pg:
    print("\n| PostgreSQL / SQLite, join latency | p50 | p99 |")
    print("|---|---|---|")
    for label, key in (("idle", "idle"), ("under 50% of each engine's maximum", "loaded")):
        a, b = latency[0].get(key), latency_pg[0].get(key)
        if a and b:
            print(f"| {label} | {b['latency']['p50_ms'] / a['latency']['p50_ms']:.2f}x | "
                  f"{b['latency']['p99_ms'] / a['latency']['p99_ms']:.2f}x |")

scale = load("scale.json")
if scale:
    print("\n| indexed responses | bytes on disk per response | index rate/s | join p50 ms | join p99 ms | join misses |")
    print("|---|---|---|---|---|---|")
    for c in scale[0]["checkpoints"]:
        note = " (time budget reached)" if c["budget_exhausted"] else ""
        print(f"| {c['responses']}{note} | {c['bytes_per_response']:.0f} | {c['index_rate_per_sec']:.0f} | "
              f"{c['join']['p50_ms']:.2f} | {c['join']['p99_ms']:.2f} | {c['join_misses']} |")
