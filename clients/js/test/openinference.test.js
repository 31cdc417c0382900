// A real instrumentation, end to end: the OpenAI SDK (`openai`) instrumented by OpenInference
// (`@arizeai/openinference-instrumentation-openai`) against a local OpenAI-compatible server,
// its spans given closedloop's attributes by ClosedloopSpanProcessor inside `withTurn` and
// exported to the real receiver.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { OpenAIInstrumentation } from "@arizeai/openinference-instrumentation-openai";
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import * as openai from "openai";

import {
  ClosedloopSpanProcessor,
  PromptTemplate,
  queryFingerprint,
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

/** A local OpenAI-compatible server: every chat completion gets the same answer. */
let completions = 0;
const model = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    const asked = JSON.parse(body);
    completions += 1;
    response.writeHead(200, { "content-type": "application/json" });
    response.end(
      JSON.stringify({
        id: `chatcmpl-js-${completions}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: `${asked.model}-2024-07-18`,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "Open Settings, then Security." },
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27 },
      }),
    );
  });
});

/** @type {import("./support/receiver.js").Receiver} */
let receiver;
/** @type {BasicTracerProvider} */
let provider;
/** @type {openai.OpenAI} */
let client;
const local = new InMemorySpanExporter();

before(async () => {
  await new Promise((r) => model.listen(0, "127.0.0.1", () => r(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (model.address());
  receiver = await startReceiver();
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "support-app" }),
    spanProcessors: [
      new ClosedloopSpanProcessor(),
      new SimpleSpanProcessor(local),
      new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` })),
    ],
  });
  const instrumentation = new OpenAIInstrumentation({ tracerProvider: provider });
  instrumentation.manuallyInstrument(openai);
  client = new openai.OpenAI({
    apiKey: "test-key",
    baseURL: `http://127.0.0.1:${address.port}/v1`,
    maxRetries: 0,
  });
});

after(async () => {
  await provider?.shutdown();
  await receiver?.stop();
  model.close();
});

/**
 * One answer by the instrumented OpenAI client inside a turn.
 * @param {string} sessionId
 * @param {string} question
 */
async function ask(sessionId, question) {
  const ref = await withTurn({ sessionId, template: TEMPLATE, query: question }, async (turn) => {
    turn.setChunkIds(["kb-reset#2", "kb-locked#0"]);
    await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [
        { role: "system", content: "Answer from the context only." },
        { role: "user", content: question },
      ],
    });
    return turn.responseRef({ secret: SECRET });
  });
  await provider.forceFlush();
  return ref;
}

test("an OpenInference LLM span gets the turn's attributes; a thumbs-down, a record", async () => {
  const question = "How do I reset my password?";
  const first = await ask("oi-session", question);
  const second = await ask("oi-session", question);

  const llm = local.getFinishedSpans().find((s) => s.spanContext().spanId === second.span_id);
  assert.ok(llm, "the turn's response is the OpenInference LLM span");
  assert.equal(llm.attributes["openinference.span.kind"], "LLM");
  assert.equal(llm.attributes["session.id"], "oi-session");
  assert.equal(llm.attributes["closedloop.prompt.template.id"], "support/answer");
  assert.equal(llm.attributes["closedloop.query.fingerprint"], queryFingerprint(question));
  assert.deepEqual(llm.attributes["closedloop.context.chunk_ids"], ["kb-reset#2", "kb-locked#0"]);

  await sendFeedback(receiver.url, { response: second, signal: "thumbs_down" });
  const id = `fr_${second.trace_id}_${second.span_id}`;
  const record = await eventually(`failure record ${id}`, async () =>
    (await triageList(receiver)).find((r) => r.id === id),
  );
  assert.deepEqual(record.signals, ["thumbs_down"]);
  const cases = await evalsetExport(receiver);
  const evalCase = cases.find((c) => c.metadata.sources.some((s) => s.failure_id === id));
  assert.equal(evalCase.metadata.template_id, "support/answer");
  assert.equal(evalCase.metadata.template_version, TEMPLATE.version);
  // The requested model (from llm.invocation_parameters), not the response model that
  // OpenInference writes as llm.model_name.
  assert.equal(evalCase.metadata.model, "gpt-4o-mini");
  assert.deepEqual(evalCase.metadata.chunk_ids, ["kb-reset#2", "kb-locked#0"]);

  // The same question again in the session: a regenerate signal for the first answer (one
  // eval case for both, near-duplicate queries being merged).
  const repeated = `fr_${first.trace_id}_${first.span_id}`;
  const regenerated = await eventually(`failure record ${repeated}`, async () =>
    (await triageList(receiver)).find((r) => r.id === repeated),
  );
  assert.deepEqual(regenerated.signals, ["regenerate"]);
});
