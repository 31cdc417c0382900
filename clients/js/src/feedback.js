// Feedback: posted to the receiver's feedback API, or recorded as a feedback span linked to
// the judged span (closedloop-tracing's `record_feedback`).

import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from "@opentelemetry/api";

import * as attr from "./attributes.js";

/** The feedback API path on the receiver's HTTP listener. */
export const FEEDBACK_PATH = "/v1/feedback";

/** The prefix of `gen_ai.evaluation.name` on feedback spans, followed by the signal. */
const EVALUATION_NAME_PREFIX = "closedloop.feedback.";

const IMPLICIT = new Set(["regenerate", "rephrase", "edit", "copy", "abandon"]);
const POSITIVE = new Set(["thumbs_up", "copy"]);
const NEGATIVE = new Set([
  "thumbs_down",
  "regenerate",
  "rephrase",
  "abandon",
  "escalate",
  "report",
]);

/**
 * Why the receiver refused feedback: `status` is the HTTP status, `code` the receiver's error
 * code (`invalid_token`, `token_mismatch`, `invalid_field`, `rate_limited`...), and
 * `retryAfterSecs` its `Retry-After` when it sent one.
 */
export class FeedbackApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | undefined} retryAfterSecs
   */
  constructor(status, code, message, retryAfterSecs) {
    super(message);
    this.name = "FeedbackApiError";
    this.status = status;
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
  }
}

/**
 * @typedef {object} FeedbackRequest
 * @property {import("./turn.js").ResponseRef | { trace_id: string, span_id: string }} response
 *   the judged answer, as the application handed it to its client
 * @property {string} signal a `closedloop.feedback.signal` value
 * @property {string} [feedbackToken] when `response` does not carry `feedback_token`
 * @property {number} [value] the score from 0.0 (worst) to 1.0 (best)
 * @property {number} [rating] a 1-based rating on `scale`, instead of `value`
 * @property {number} [scale]
 * @property {string} [category] a `closedloop.failure.category` value
 * @property {string} [comment] kept only where the receiver captures comments
 * @property {string} [idempotencyId] a repeated id is counted once
 * @property {string} [responseId] the response's `gen_ai.response.id`
 * @property {string} [sessionId]
 */

/**
 * Posts feedback to the receiver's `POST /v1/feedback`.
 *
 * @param {string} endpoint the receiver's HTTP base URL (`http://host:4318`), or the full
 *   feedback URL
 * @param {FeedbackRequest} feedback
 * @param {{ fetch?: typeof fetch, signal?: AbortSignal }} [options]
 * @returns {Promise<{ feedbackId: string, duplicate: boolean }>}
 * @throws {FeedbackApiError} when the receiver refuses the feedback
 */
export async function sendFeedback(endpoint, feedback, options = {}) {
  const url = endpoint.replace(/\/+$/, "").endsWith(FEEDBACK_PATH)
    ? endpoint
    : endpoint.replace(/\/+$/, "") + FEEDBACK_PATH;
  /** @type {Record<string, unknown>} */
  const body = {
    response: feedback.response,
    signal: feedback.signal,
    feedback_token: feedback.feedbackToken,
    value: feedback.value,
    rating: feedback.rating,
    scale: feedback.scale,
    category: feedback.category,
    comment: feedback.comment,
    idempotency_id: feedback.idempotencyId,
    response_id: feedback.responseId,
    session_id: feedback.sessionId,
  };
  const doFetch = options.fetch ?? fetch;
  const answer = await doFetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: options.signal,
  });
  const text = await answer.text();
  /** @type {any} */
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!answer.ok) {
    const retryAfter = Number(answer.headers.get("retry-after"));
    throw new FeedbackApiError(
      answer.status,
      json?.error?.code ?? "http_error",
      json?.error?.message ?? `the receiver answered HTTP ${answer.status}`,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
  return { feedbackId: String(json?.feedback_id ?? ""), duplicate: json?.duplicate === true };
}

/**
 * @typedef {object} Feedback
 * @property {string} signal a `closedloop.feedback.signal` value
 * @property {"explicit" | "implicit"} [kind] derived from the signal by default
 * @property {number} [value] 0.0 to 1.0; implied by thumbs, copy and the negative signals
 * @property {string} [category] a `closedloop.failure.category` value
 * @property {string} [comment] exported only with `captureComments`
 * @property {"user" | "app" | "detector" | "reviewer"} [source] derived from the signal by default
 * @property {string} [id] the idempotency id
 * @property {string} [responseId] the judged response's `gen_ai.response.id`
 * @property {string} [sessionId]
 * @property {string} [userId] exported as given: hash it first if it identifies a person
 */

/**
 * Records one feedback span about the judged span, as closedloop-tracing's `record_feedback`
 * does: in the judged span's trace (a child of its span context, as a remote parent, so a
 * parent-based sampler keeps it with the response) with exactly one link, to the judged
 * span, with `closedloop.link.type` = `judged_response`. The judged span need not be alive or
 * in this process.
 *
 * @param {import("@opentelemetry/api").Tracer} tracer
 * @param {{ trace_id: string, span_id: string } | { traceId: string, spanId: string }} response
 *   a `ResponseRef`, a verified feedback token, or a span context
 * @param {Feedback} feedback
 * @param {{ captureComments?: boolean }} [options] comments are content and are left out
 *   unless `captureComments` is true
 */
export function recordFeedback(tracer, response, feedback, options = {}) {
  const traceId = "trace_id" in response ? response.trace_id : response.traceId;
  const spanId = "span_id" in response ? response.span_id : response.spanId;
  if (!/^[0-9a-f]{32}$/.test(traceId) || /^0+$/.test(traceId)) {
    throw new TypeError("the judged trace id must be 32 lowercase hex digits, not all zeros");
  }
  if (!/^[0-9a-f]{16}$/.test(spanId) || /^0+$/.test(spanId)) {
    throw new TypeError("the judged span id must be 16 lowercase hex digits, not all zeros");
  }
  const { signal } = feedback;
  if (!attr.FEEDBACK_SIGNALS.includes(signal)) {
    throw new TypeError(`unknown feedback signal ${JSON.stringify(signal)}`);
  }
  if (feedback.category !== undefined && !attr.FAILURE_CATEGORIES.includes(feedback.category)) {
    throw new TypeError(`unknown failure category ${JSON.stringify(feedback.category)}`);
  }
  if (feedback.value !== undefined && !(feedback.value >= 0 && feedback.value <= 1)) {
    throw new RangeError(`feedback value ${feedback.value} is not between 0.0 and 1.0`);
  }
  const value = feedback.value ?? (POSITIVE.has(signal) ? 1 : NEGATIVE.has(signal) ? 0 : undefined);
  const kind = feedback.kind ?? (IMPLICIT.has(signal) ? "implicit" : "explicit");
  const source =
    feedback.source ??
    (signal === "regenerate" || signal === "edit" || signal === "copy"
      ? "app"
      : signal === "rephrase" || signal === "abandon"
        ? "detector"
        : signal === "label"
          ? "reviewer"
          : "user");
  const label = value === undefined ? "neutral" : value >= 0.5 ? "pass" : "fail";

  /** @type {import("@opentelemetry/api").Attributes} */
  const attributes = {
    [attr.FEEDBACK_SIGNAL]: signal,
    [attr.FEEDBACK_KIND]: kind,
    [attr.FEEDBACK_SOURCE]: source,
    [attr.GEN_AI_EVALUATION_NAME]: EVALUATION_NAME_PREFIX + signal,
    [attr.GEN_AI_EVALUATION_SCORE_LABEL]: label,
  };
  if (value !== undefined) {
    attributes[attr.FEEDBACK_VALUE] = value;
    attributes[attr.GEN_AI_EVALUATION_SCORE_VALUE] = value;
  }
  if (feedback.category !== undefined) {
    attributes[attr.FAILURE_CATEGORY] = feedback.category;
  }
  if (feedback.id !== undefined) {
    attributes[attr.FEEDBACK_ID] = feedback.id;
  }
  if (feedback.responseId !== undefined) {
    attributes[attr.GEN_AI_RESPONSE_ID] = feedback.responseId;
  }
  if (feedback.sessionId !== undefined) {
    attributes[attr.SESSION_ID] = feedback.sessionId;
  }
  if (feedback.userId !== undefined) {
    attributes[attr.USER_ID] = feedback.userId;
  }
  if (options.captureComments === true && feedback.comment) {
    attributes[attr.FEEDBACK_COMMENT] = feedback.comment;
    attributes[attr.GEN_AI_EVALUATION_EXPLANATION] = feedback.comment;
  }

  /** @type {import("@opentelemetry/api").SpanContext} */
  const judged = { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
  const parent = trace.setSpanContext(ROOT_CONTEXT, judged);
  const span = tracer.startSpan(
    `feedback ${signal}`,
    {
      kind: SpanKind.INTERNAL,
      attributes,
      links: [{ context: judged, attributes: { [attr.LINK_TYPE]: attr.LINK_JUDGED_RESPONSE } }],
    },
    parent,
  );
  span.end();
}
