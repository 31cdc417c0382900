// ClosedloopSpanProcessor on the real OpenTelemetry SDK (sdk-trace-base 2.x, the async-hooks
// context manager): which spans get closedloop's attributes, and what never leaves.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";

import { context, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

import {
  ClosedloopSpanProcessor,
  PromptTemplate,
  queryFingerprint,
  recordFeedback,
  verifyFeedbackToken,
  withTurn,
} from "../src/index.js";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  spanProcessors: [new ClosedloopSpanProcessor(), new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer("an-instrumentation");

const TEMPLATE = new PromptTemplate(
  "support/answer",
  "Context:\n{context}\n\nQuestion: {question}",
);
const QUERY = "How do I reset my password?";

/** A model call as the OpenTelemetry GenAI instrumentations start it. */
async function chat() {
  const span = tracer.startSpan("chat gpt-4o", {
    kind: SpanKind.CLIENT,
    attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o" },
  });
  await sleep(1);
  span.end();
  return span;
}

/** @param {string} name */
function finished(name) {
  const spans = exporter.getFinishedSpans().filter((s) => s.name === name);
  assert.equal(spans.length, 1, `one ${name} span`);
  return spans[0];
}

test("spans started inside a turn get its attributes, across awaits; others do not", async () => {
  exporter.reset();
  await chat();
  const before = finished("chat gpt-4o");
  exporter.reset();

  await withTurn(
    { sessionId: "s-1", template: TEMPLATE, query: QUERY, turnIndex: 2, indexVersion: "v7" },
    async (turn) => {
      await sleep(1);
      await tracer.startActiveSpan("retrieve", async (span) => {
        await sleep(1);
        span.end();
      });
      turn.setChunkIds(["kb-reset#2", "kb-locked#0"]);
      await chat();
    },
  );

  assert.deepEqual(Object.keys(before.attributes).sort(), [
    "gen_ai.operation.name",
    "gen_ai.request.model",
  ]);
  const llm = finished("chat gpt-4o");
  assert.deepEqual(llm.attributes, {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "session.id": "s-1",
    "closedloop.prompt.template.id": "support/answer",
    "closedloop.prompt.template.version": TEMPLATE.version,
    "closedloop.prompt.template.hash": TEMPLATE.hash,
    "gen_ai.prompt.name": "support/answer",
    "closedloop.query.fingerprint": queryFingerprint(QUERY),
    "closedloop.turn.index": 2,
    "closedloop.retrieval.index.version": "v7",
    "closedloop.context.chunk_ids": ["kb-reset#2", "kb-locked#0"],
  });
  // The retrieval ended before the chunks were known: it has the turn, not the chunks.
  const retrieve = finished("retrieve");
  assert.equal(retrieve.attributes["session.id"], "s-1");
  assert.equal(retrieve.attributes["closedloop.context.chunk_ids"], undefined);
});

test("the query text is on no span and the instrumentation's own values are kept", async () => {
  exporter.reset();
  await withTurn({ sessionId: "from-turn", template: TEMPLATE, query: QUERY }, async () => {
    const span = tracer.startSpan("llm", {
      attributes: { "openinference.span.kind": "LLM", "session.id": "from-instrumentation" },
    });
    span.end();
  });
  const llm = finished("llm");
  assert.equal(llm.attributes["session.id"], "from-instrumentation");
  for (const value of Object.values(llm.attributes)) {
    assert.ok(!String(value).includes("password"), `no query text in ${value}`);
  }
});

test("the turn names its model call and mints a token for exactly that span", async () => {
  exporter.reset();
  const secret = "a feedback secret of at least 32 bytes";
  const ref = await withTurn({ query: QUERY }, async (turn) => {
    assert.throws(() => turn.responseRef({ secret }), /no model call/);
    await tracer.startActiveSpan("POST /ask", async (server) => {
      await chat();
      server.end();
    });
    return turn.responseRef({ secret, ttlSecs: 60 });
  });
  const llm = finished("chat gpt-4o");
  assert.equal(ref.trace_id, llm.spanContext().traceId);
  assert.equal(ref.span_id, llm.spanContext().spanId);
  assert.equal(ref.traceparent, `00-${ref.trace_id}-${ref.span_id}-01`);
  const verified = verifyFeedbackToken(secret, ref.feedback_token);
  assert.equal(verified.spanId, ref.span_id);
  assert.ok(verified.expiresAt.getTime() - Date.now() <= 60_000);
});

test("nested turns: the inner one wins inside it, the outer one resumes after", async () => {
  exporter.reset();
  await withTurn({ sessionId: "outer" }, async () => {
    await withTurn({ sessionId: "inner" }, async () => {
      tracer.startSpan("a").end();
    });
    tracer.startSpan("b").end();
  });
  tracer.startSpan("c").end();
  assert.equal(finished("a").attributes["session.id"], "inner");
  assert.equal(finished("b").attributes["session.id"], "outer");
  assert.equal(finished("c").attributes["session.id"], undefined);
});

test("a feedback span lives in the judged trace, linked once to the judged span", async () => {
  exporter.reset();
  const judged = await chat();
  const { traceId, spanId } = judged.spanContext();
  await withTurn({ sessionId: "s-2", template: TEMPLATE }, async () => {
    recordFeedback(
      tracer,
      { trace_id: traceId, span_id: spanId },
      {
        signal: "thumbs_down",
        category: "hallucination",
        comment: "It quoted the old policy.",
        id: "fb-1",
        sessionId: "s-2",
      },
    );
  });
  const feedback = finished("feedback thumbs_down");
  assert.equal(feedback.spanContext().traceId, traceId);
  assert.equal(feedback.parentSpanContext?.spanId, spanId);
  assert.equal(feedback.kind, SpanKind.INTERNAL);
  assert.equal(feedback.links.length, 1);
  assert.equal(feedback.links[0].context.spanId, spanId);
  assert.deepEqual(feedback.links[0].attributes, { "closedloop.link.type": "judged_response" });
  // No comment without captureComments, and none of the turn's attributes.
  assert.deepEqual(feedback.attributes, {
    "closedloop.feedback.signal": "thumbs_down",
    "closedloop.feedback.kind": "explicit",
    "closedloop.feedback.source": "user",
    "gen_ai.evaluation.name": "closedloop.feedback.thumbs_down",
    "gen_ai.evaluation.score.label": "fail",
    "closedloop.feedback.value": 0,
    "gen_ai.evaluation.score.value": 0,
    "closedloop.failure.category": "hallucination",
    "closedloop.feedback.id": "fb-1",
    "session.id": "s-2",
  });

  recordFeedback(
    tracer,
    judged.spanContext(),
    { signal: "rating", value: 0.75, comment: "fine" },
    { captureComments: true },
  );
  const rating = finished("feedback rating");
  assert.equal(rating.attributes["closedloop.feedback.comment"], "fine");
  assert.equal(rating.attributes["gen_ai.evaluation.score.label"], "pass");
  assert.equal(rating.attributes["closedloop.feedback.kind"], "explicit");

  recordFeedback(tracer, judged.spanContext(), { signal: "rephrase" });
  const rephrase = finished("feedback rephrase");
  assert.equal(rephrase.attributes["closedloop.feedback.kind"], "implicit");
  assert.equal(rephrase.attributes["closedloop.feedback.source"], "detector");
});

test("feedback that cannot be valid is refused before any span starts", () => {
  exporter.reset();
  const ids = { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" };
  assert.throws(() => recordFeedback(tracer, ids, { signal: "meh" }), TypeError);
  assert.throws(
    () => recordFeedback(tracer, ids, { signal: "thumbs_down", category: "bad" }),
    TypeError,
  );
  assert.throws(() => recordFeedback(tracer, ids, { signal: "rating", value: 2 }), RangeError);
  assert.throws(
    () => recordFeedback(tracer, { ...ids, span_id: "0000000000000000" }, { signal: "copy" }),
    TypeError,
  );
  assert.equal(exporter.getFinishedSpans().length, 0);
});

test("synchronous callbacks get the turn too", () => {
  exporter.reset();
  withTurn({ sessionId: "sync" }, () => {
    tracer.startSpan("sync").end();
    assert.equal(trace.getActiveSpan(), undefined);
  });
  assert.equal(finished("sync").attributes["session.id"], "sync");
});
