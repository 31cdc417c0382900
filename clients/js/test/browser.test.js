// The browser snippet (clients/browser/closedloop-feedback.js) in real headless Chromium: a
// page served by a local HTTP server renders the buttons for one answer, a click sends the
// feedback to the real receiver, and the receiver makes it a failure record, enriched from
// the answer's model-call span exported before.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { after, before, test } from "node:test";

import { context, SpanKind } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

import { ClosedloopSpanProcessor, PromptTemplate, sendFeedback, withTurn } from "../src/index.js";
import { Browser, missingBrowser } from "./support/browser.js";
import {
  SECRET,
  evalsetExport,
  eventually,
  startReceiver,
  triageList,
} from "./support/receiver.js";

const SNIPPET = readFileSync(
  resolve(import.meta.dirname, "../../browser/closedloop-feedback.js"),
  "utf8",
);
const skip = missingBrowser();
const TEMPLATE = new PromptTemplate(
  "support/answer",
  "Context:\n{context}\n\nQuestion: {question}",
);

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

/** @type {Map<string, string>} */
const pages = new Map();
const site = createServer((request, response) => {
  const path = new URL(request.url ?? "/", "http://localhost").pathname;
  if (path === "/closedloop-feedback.js") {
    response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
    response.end(SNIPPET);
  } else if (pages.has(path)) {
    // A strict style policy: the snippet's stylesheet must not need 'unsafe-inline'.
    response.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": "style-src 'self'",
    });
    response.end(pages.get(path));
  } else {
    response.writeHead(404).end();
  }
});

/** @type {string} */
let siteUrl;
/** @type {import("./support/receiver.js").Receiver} */
let receiver;
/** @type {BasicTracerProvider} */
let provider;
/** @type {Browser} */
let browser;

before(async () => {
  if (skip) {
    return;
  }
  await new Promise((r) => site.listen(0, "127.0.0.1", () => r(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (site.address());
  siteUrl = `http://127.0.0.1:${address.port}`;
  // The page's origin may read the receiver's answers (so fetch succeeds); the beacon needs
  // no CORS at all.
  receiver = await startReceiver({ feedback: [`allowed_origins = [${JSON.stringify(siteUrl)}]`] });
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "support-app" }),
    spanProcessors: [
      new ClosedloopSpanProcessor(),
      new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` })),
    ],
  });
  browser = await Browser.start();
});

after(async () => {
  await browser?.stop();
  await provider?.shutdown();
  await receiver?.stop();
  site.close();
});

/**
 * The app's side of one answer: its model call exported inside a turn, and the page that
 * shows it with the snippet.
 * @param {string} path
 * @param {{ sessionId: string, query: string, chunkIds: string[], attributes: string }} answer
 */
async function publishAnswer(path, { sessionId, query, chunkIds, attributes }) {
  const tracer = provider.getTracer("a-genai-instrumentation");
  const ref = await withTurn({ sessionId, template: TEMPLATE, query, chunkIds }, (turn) => {
    tracer
      .startSpan("chat gpt-4o", {
        kind: SpanKind.CLIENT,
        attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o" },
      })
      .end();
    return turn.responseRef({ secret: SECRET });
  });
  await provider.forceFlush();
  pages.set(
    path,
    `<!doctype html>
<html><head><meta charset="utf-8"><title>answer</title>
<script>
  // Counts the beacons the page queues, then queues them for real.
  window.beacons = [];
  const queue = navigator.sendBeacon.bind(navigator);
  window.beaconBodies = [];
  navigator.sendBeacon = (url, data) => {
    window.beacons.push(String(url));
    data.text().then((text) => window.beaconBodies.push(text));
    return queue(url, data);
  };
  window.sent = [];
  document.addEventListener("closedloop-feedback", (e) => window.sent.push(e.detail));
  document.addEventListener("closedloop-feedback-error", (e) =>
    window.sent.push({ error: String(e.detail.error) }));
</script>
<script src="/closedloop-feedback.js" defer></script>
</head><body>
<p>To reset your password, open Settings.</p>
<div id="feedback" data-closedloop-feedback data-endpoint="${receiver.url}"
     data-feedback-token="${ref.feedback_token}" data-session-id="${sessionId}" ${attributes}></div>
</body></html>`,
  );
  return ref;
}

/** The feedback events the page saw, once there is one. */
async function sentFromPage() {
  return browser.waitFor("the snippet's feedback event", async () => {
    const sent = await browser.execute("return window.sent;");
    return sent.length > 0 ? sent : undefined;
  });
}

/** @param {{ trace_id: string, span_id: string }} ref */
async function failureRecord(ref) {
  const id = `fr_${ref.trace_id}_${ref.span_id}`;
  return eventually(`failure record ${id}`, async () =>
    (await triageList(receiver)).find((r) => r.id === id),
  );
}

test("a thumbs-down sent by sendBeacon becomes an enriched failure record", { skip }, async () => {
  const ref = await publishAnswer("/beacon", {
    sessionId: "browser-session",
    query: "How do I reset my password?",
    chunkIds: ["kb-reset#2", "kb-locked#0"],
    attributes: 'data-transport="beacon"',
  });
  await browser.open(`${siteUrl}/beacon`);
  await browser.click("#feedback .closedloop-feedback-down");
  assert.deepEqual(await sentFromPage(), [{ signal: "thumbs_down", transport: "beacon" }]);
  assert.deepEqual(await browser.execute("return window.beacons;"), [
    `${receiver.url}/v1/feedback`,
  ]);
  assert.equal(
    await browser.execute('return document.querySelector("#feedback [role=status]").textContent;'),
    "Thanks for your feedback.",
  );

  const record = await failureRecord(ref);
  assert.deepEqual(record.signals, ["thumbs_down"]);
  const evalCase = (await evalsetExport(receiver)).find((c) => c.metadata.failure_id === record.id);
  assert.equal(evalCase.metadata.template_id, "support/answer");
  assert.equal(evalCase.metadata.template_version, TEMPLATE.version);
  assert.deepEqual(evalCase.metadata.chunk_ids, ["kb-reset#2", "kb-locked#0"]);
});

test("a thumbs-down with a comment goes by fetch with keepalive", { skip }, async () => {
  const ref = await publishAnswer("/fetch", {
    sessionId: "browser-session-2",
    query: "Which plans include SSO?",
    chunkIds: ["kb-plans#0"],
    attributes: "data-comment",
  });
  await browser.open(`${siteUrl}/fetch`);
  const display = (selector) =>
    browser.execute(`return getComputedStyle(document.querySelector(${JSON.stringify(selector)})).display;`);
  await browser.waitFor("the snippet's buttons", async () =>
    (await browser.execute('return document.querySelector("#feedback .closedloop-feedback") !== null;')) || undefined,
  );
  // Styled under the page's style-src 'self', and the comment form hidden until a thumbs down.
  assert.equal(await display("#feedback .closedloop-feedback"), "inline-flex");
  assert.equal(await display("#feedback form"), "none");
  await browser.click("#feedback .closedloop-feedback-down");
  assert.equal(await display("#feedback form"), "flex");
  await browser.execute(
    'document.querySelector("#feedback textarea").value = "It named the wrong plan.";',
  );
  await browser.click('#feedback button[type="submit"]');
  assert.deepEqual(await sentFromPage(), [{ signal: "thumbs_down", transport: "fetch" }]);
  assert.deepEqual(await browser.execute("return window.beacons;"), []);
  const record = await failureRecord(ref);
  assert.deepEqual(record.signals, ["thumbs_down"]);
});

test("a fetch whose answer the page may not read falls back to a beacon", { skip }, async () => {
  const ref = await publishAnswer("/fallback", {
    sessionId: "browser-session-3",
    query: "connect Google Calendar",
    chunkIds: ["kb-calendar#1"],
    attributes: "",
  });
  // The same server under another origin, one the receiver's allowed_origins does not list:
  // the request reaches the receiver, but the page may not read the answer, so fetch fails.
  await browser.open(`${siteUrl.replace("127.0.0.1", "localhost")}/fallback`);
  await browser.click("#feedback .closedloop-feedback-down");
  assert.deepEqual(await sentFromPage(), [{ signal: "thumbs_down", transport: "beacon" }]);
  const [body] = await browser.waitFor("the beacon's body", async () => {
    const bodies = await browser.execute("return window.beaconBodies;");
    return bodies.length > 0 ? bodies : undefined;
  });
  const sent = JSON.parse(body);
  assert.deepEqual(sent.response, { trace_id: ref.trace_id, span_id: ref.span_id });
  assert.equal(sent.feedback_token, ref.feedback_token);
  const record = await failureRecord(ref);
  assert.deepEqual(record.signals, ["thumbs_down"]);
  // The fetch was delivered before it failed in the page, so the beacon repeated it; both
  // carried one idempotency id, which the receiver holds: it counts them once.
  const again = await sendFeedback(receiver.url, {
    response: ref,
    signal: "thumbs_down",
    idempotencyId: sent.idempotency_id,
  });
  assert.deepEqual(again, { feedbackId: sent.idempotency_id, duplicate: true });
});
