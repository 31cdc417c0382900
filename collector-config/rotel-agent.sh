#!/usr/bin/env bash
# rotel (the Rust OpenTelemetry collector) as the agent in front of closedloop: the rotel
# equivalent of agent.yaml's closedloop route.
#
#   app ──OTLP──▶ rotel-agent ──OTLP gRPC──▶ closedloop
#
# rotel ships on PyPI (`pip install --pre rotel`; the wheel carries the rotel-agent binary).
# The version on PyPI (0.0.1a15) accepts a single traces exporter and has no attribute
# routing, tail sampling or trace-id load balancing, so:
#   - send everything to closedloop: it indexes LLM, retrieval and feedback spans and ignores
#     the rest cheaply, then exports failure records to your backend (its [export] section);
#   - to reach Jaeger or Tempo as well, run a second agent (or point the app's SDK at both),
#     or forward to an OpenTelemetry Collector running agent.yaml / gateway.yaml;
#   - for several closedloop receivers, put gateway.yaml (load_balancing by traceID) between
#     rotel and closedloop.
#
# Every setting can be overridden from the environment:
#   ROTEL_AGENT          the rotel-agent binary             (default: rotel-agent on PATH)
#   ROTEL_GRPC_ENDPOINT  where apps send OTLP gRPC          (default: 127.0.0.1:4317)
#   ROTEL_HTTP_ENDPOINT  where apps send OTLP HTTP          (default: 127.0.0.1:4318)
#   CLOSEDLOOP_ENDPOINT  closedloop's OTLP gRPC address     (default: http://127.0.0.1:14317)
#
# With closedloop on the same host, start it on other ports than the agent, e.g.
#   closedloop serve --grpc-addr 127.0.0.1:14317 --http-addr 127.0.0.1:14318
set -euo pipefail

exec "${ROTEL_AGENT:-rotel-agent}" start \
  --otlp-grpc-endpoint "${ROTEL_GRPC_ENDPOINT:-127.0.0.1:4317}" \
  --otlp-http-endpoint "${ROTEL_HTTP_ENDPOINT:-127.0.0.1:4318}" \
  --exporter otlp \
  --otlp-exporter-endpoint "${CLOSEDLOOP_ENDPOINT:-http://127.0.0.1:14317}" \
  --otlp-exporter-protocol grpc \
  --traces-batch-timeout 200ms
