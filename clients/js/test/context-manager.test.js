// Without an OpenTelemetry context manager a turn cannot reach the spans started inside it:
// withTurn says so once, through the OpenTelemetry diagnostic logger.

import assert from "node:assert/strict";
import { test } from "node:test";

import { DiagLogLevel, diag } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

import { ClosedloopSpanProcessor, withTurn } from "../src/index.js";

test("withTurn warns once when no context manager is installed", () => {
  /** @type {string[]} */
  const warnings = [];
  const log = (/** @type {string} */ message) => warnings.push(message);
  diag.setLogger(
    { error: log, warn: log, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new ClosedloopSpanProcessor(), new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer("an-instrumentation");
  for (const sessionId of ["first", "second"]) {
    const returned = withTurn({ sessionId }, (turn) => {
      tracer.startSpan("llm").end();
      return turn.sessionId;
    });
    assert.equal(returned, sessionId);
  }
  assert.equal(warnings.filter((w) => w.includes("no OpenTelemetry context manager")).length, 1);
  assert.deepEqual(
    exporter.getFinishedSpans().map((s) => s.attributes["session.id"]),
    [undefined, undefined],
  );
});
