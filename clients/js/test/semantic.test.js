// The semantic fingerprint on spans: written by ClosedloopSpanProcessor only when it captures
// query embeddings, from the fingerprint a turn was given, never the vector.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";

import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

import {
  ClosedloopSpanProcessor,
  SemanticHasher,
  queryFingerprint,
  withTurn,
} from "../src/index.js";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const vectors = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../../testdata/vectors.json"), "utf8"),
);
const MINILM = vectors.semantic_fingerprints.find(
  (v) => v.model === "all-MiniLM-L6-v2" && v.embedding.some((x) => x * 64 !== Math.trunc(x * 64)),
);
const SEMANTIC = "closedloop.query.semantic_fingerprint";

/** @param {boolean} captureQueryEmbedding */
function traced(captureQueryEmbedding) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [
      new ClosedloopSpanProcessor({ captureQueryEmbedding }),
      new SimpleSpanProcessor(exporter),
    ],
  });
  return { tracer: provider.getTracer("t"), exporter };
}

test("the semantic fingerprint is written only when query embeddings are captured", () => {
  const off = traced(false);
  const on = traced(true);
  const hasher = new SemanticHasher(MINILM.model, MINILM.embedding.length);
  const query = "How do I reset my password?";
  withTurn({ sessionId: "s-1", query }, (turn) => {
    on.tracer.startSpan("before").end();
    turn.setQueryEmbedding(hasher, Float32Array.from(MINILM.embedding));
    assert.equal(turn.querySemanticFingerprint, MINILM.fingerprint);
    off.tracer.startSpan("chat").end();
    on.tracer.startSpan("chat").end();
    on.tracer.startSpan("own", { attributes: { [SEMANTIC]: "sh512:own:x" } }).end();
  });
  const [chatOff] = off.exporter.getFinishedSpans();
  assert.equal(chatOff.attributes[SEMANTIC], undefined);
  assert.equal(chatOff.attributes["closedloop.query.fingerprint"], queryFingerprint(query));
  const [before, chatOn, own] = on.exporter.getFinishedSpans();
  assert.equal(before.attributes[SEMANTIC], undefined);
  assert.equal(chatOn.attributes[SEMANTIC], MINILM.fingerprint);
  assert.equal(own.attributes[SEMANTIC], "sh512:own:x");
  // No span carries the vector.
  for (const span of [...off.exporter.getFinishedSpans(), ...on.exporter.getFinishedSpans()]) {
    for (const value of Object.values(span.attributes)) {
      assert.ok(!Array.isArray(value) || value.length !== MINILM.embedding.length);
    }
  }
});
