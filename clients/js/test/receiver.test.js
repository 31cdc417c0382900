// The whole loop against the real receiver (`closedloop serve`): spans of an app exported
// over OTLP/HTTP protobuf with ClosedloopSpanProcessor, feedback through the feedback API and
// as feedback spans, results read through the store commands' JSON outputs.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { context, SpanKind } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

import {
  ClosedloopSpanProcessor,
  FeedbackApiError,
  PromptTemplate,
  issueFeedbackToken,
  queryFingerprint,
  recordFeedback,
  sendFeedback,
  withTurn,
} from "../src/index.js";
import {
  SECRET,
  evalsetExport,
  eventually,
  startReceiver,
  triageList,
} from "./support/receiver.js";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const TEMPLATE = new PromptTemplate(
  "support/answer",
  "Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}",
);

/** @type {import("./support/receiver.js").Receiver} */
let receiver;
/** @type {BasicTracerProvider} */
let provider;
/** @type {import("@opentelemetry/api").Tracer} */
let tracer;

before(async () => {
  receiver = await startReceiver();
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "support-app" }),
    spanProcessors: [
      new ClosedloopSpanProcessor(),
      new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` })),
    ],
  });
  tracer = provider.getTracer("a-genai-instrumentation");
});

after(async () => {
  await provider?.shutdown();
  await receiver?.stop();
});

/**
 * One answer: the app's request span, a retrieval and a model call as an instrumentation
 * records them, inside a turn; returns the answer's reference with a feedback token.
 * @param {{ sessionId: string, query: string, chunkIds: string[] }} turnOptions
 */
async function answer({ sessionId, query, chunkIds }) {
  const ref = await withTurn({ sessionId, template: TEMPLATE, query }, (turn) =>
    tracer.startActiveSpan("POST /ask", { kind: SpanKind.SERVER }, async (server) => {
      const retrieval = { attributes: { "gen_ai.operation.name": "retrieval" } };
      tracer.startSpan("retrieval kb", retrieval).end();
      turn.setChunkIds(chunkIds);
      const chat = tracer.startSpan("chat gpt-4o", {
        kind: SpanKind.CLIENT,
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "gpt-4o",
        },
      });
      chat.end();
      server.end();
      return turn.responseRef({ secret: SECRET });
    }),
  );
  await provider.forceFlush();
  return ref;
}

/** @param {string} traceId @param {string} spanId */
const recordId = (traceId, spanId) => `fr_${traceId}_${spanId}`;

/** @param {string} id */
async function record(id) {
  return eventually(`failure record ${id}`, async () =>
    (await triageList(receiver)).find((r) => r.id === id),
  );
}

test("a thumbs-down posted to the feedback API becomes one enriched failure record", async () => {
  const ref = await answer({
    sessionId: "session-api",
    query: "Which plans include SSO?",
    chunkIds: ["kb-plans#0", "kb-sso#3"],
  });
  const sent = await sendFeedback(receiver.url, {
    response: ref,
    signal: "thumbs_down",
    category: "missing_context",
    idempotencyId: "fb-api-1",
  });
  assert.deepEqual(sent, { feedbackId: "fb-api-1", duplicate: false });
  const again = await sendFeedback(`${receiver.url}/v1/feedback`, {
    response: ref,
    signal: "thumbs_down",
    category: "missing_context",
    idempotencyId: "fb-api-1",
  });
  assert.equal(again.duplicate, true);

  const id = recordId(ref.trace_id, ref.span_id);
  const triaged = await record(id);
  assert.deepEqual(triaged.signals, ["thumbs_down"]);
  assert.equal(triaged.category, "missing_context");
  assert.equal(triaged.revision, 1, "the duplicate was not counted");

  const evalCase = (await evalsetExport(receiver)).find((c) => c.metadata.failure_id === id);
  assert.ok(evalCase, "an eval case for the record");
  assert.equal(evalCase.input, queryFingerprint("Which plans include SSO?"));
  assert.equal(evalCase.metadata.template_id, "support/answer");
  assert.equal(evalCase.metadata.template_version, TEMPLATE.version);
  assert.equal(evalCase.metadata.model, "gpt-4o");
  assert.deepEqual(evalCase.metadata.chunk_ids, ["kb-plans#0", "kb-sso#3"]);
});

test("the feedback API refuses forged tokens and tokens for another span", async () => {
  const ref = await answer({
    sessionId: "session-forged",
    query: "connect Outlook calendar",
    chunkIds: [],
  });
  const ids = { trace_id: ref.trace_id, span_id: ref.span_id };
  const inAMinute = Date.now() / 1000 + 60;
  const guessed = "not the receiver's secret, guessed";
  const forged = issueFeedbackToken(guessed, ref.trace_id, ref.span_id, inAMinute);
  await assert.rejects(
    sendFeedback(receiver.url, { response: ids, feedbackToken: forged, signal: "thumbs_down" }),
    (e) => e instanceof FeedbackApiError && e.status === 401 && e.code === "invalid_token",
  );
  const other = issueFeedbackToken(SECRET, ref.trace_id, "1111111111111111", inAMinute);
  await assert.rejects(
    sendFeedback(receiver.url, { response: ids, feedbackToken: other, signal: "thumbs_down" }),
    (e) => e instanceof FeedbackApiError && e.status === 403 && e.code === "token_mismatch",
  );
  await assert.rejects(
    sendFeedback(receiver.url, { response: ref, signal: "meh" }),
    (e) => e instanceof FeedbackApiError && e.status === 400 && e.code === "invalid_field",
  );
  const records = await triageList(receiver);
  assert.equal(
    records.find((r) => r.id === recordId(ref.trace_id, ref.span_id)),
    undefined,
  );
});

test("a feedback span over OTLP, linked to the model call, becomes a failure record", async () => {
  const ref = await answer({
    sessionId: "session-span",
    query: "I want to cancel my subscription",
    chunkIds: ["kb-cancel#1"],
  });
  recordFeedback(tracer, ref, { signal: "report", category: "harmful", id: "fb-span-1" });
  await provider.forceFlush();
  const triaged = await record(recordId(ref.trace_id, ref.span_id));
  assert.deepEqual(triaged.signals, ["report"]);
  assert.equal(triaged.category, "harmful");
});

test("the same question twice in a session: a regenerate signal for the first", async () => {
  const query = "How many vacation days do I get?";
  const first = await answer({ sessionId: "session-again", query, chunkIds: ["kb-leave#0"] });
  // The same question in another session in between is no repeat of either.
  const other = await answer({ sessionId: "session-other", query, chunkIds: ["kb-leave#0"] });
  await answer({ sessionId: "session-again", query, chunkIds: ["kb-leave#0"] });
  const triaged = await record(recordId(first.trace_id, first.span_id));
  assert.deepEqual(triaged.signals, ["regenerate"]);
  const records = await triageList(receiver);
  assert.equal(
    records.find((r) => r.id === recordId(other.trace_id, other.span_id)),
    undefined,
  );
});
