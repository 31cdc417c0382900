// One user turn: what closedloop needs to know about the answer being produced, carried in
// the OpenTelemetry context so that the spans of any instrumentation started inside it get
// closedloop's attributes from `ClosedloopSpanProcessor`.

import { context as otelContext, createContextKey, diag } from "@opentelemetry/api";

import * as attr from "./attributes.js";
import { queryFingerprint } from "./fingerprint.js";
import { PromptTemplate } from "./template.js";
import { issueFeedbackToken } from "./token.js";

/** @typedef {import("@opentelemetry/api").SpanContext} SpanContext */

const TURN_KEY = createContextKey("closedloop.turn");

/** How long a feedback token minted by `responseRef` stays valid by default: one day. */
const DEFAULT_TOKEN_TTL_SECS = 24 * 60 * 60;

/**
 * @typedef {object} TurnOptions
 * @property {string} [sessionId] `session.id`
 * @property {PromptTemplate | { id: string, text: string, version?: string }} [template]
 *   the prompt template the answer is rendered from: its id, version and hash go on the spans,
 *   never its text
 * @property {string} [query] the user's query as typed: only its fingerprint leaves the
 *   process (`closedloop.query.fingerprint`); the text is not kept
 * @property {string[]} [chunkIds] the chunks placed in the prompt, in prompt order (or set
 *   them later with `turn.setChunkIds`)
 * @property {number} [turnIndex] `closedloop.turn.index`
 * @property {string} [dataSourceId] `gen_ai.data_source.id`
 * @property {string} [indexVersion] `closedloop.retrieval.index.version`
 */

/**
 * @typedef {object} ResponseRef
 * The reference to one answer that the application hands its client, in the JSON form of
 * closedloop-tracing's `ResponseRef`, which `POST /v1/feedback` accepts as its `response`.
 * @property {string} trace_id
 * @property {string} span_id
 * @property {string} traceparent
 * @property {string} [feedback_token]
 */

/** One user turn. Create it with `withTurn` (or `new Turn` and `contextWithTurn`). */
export class Turn {
  /** @param {TurnOptions} [options] */
  constructor(options = {}) {
    const template =
      options.template === undefined || options.template instanceof PromptTemplate
        ? options.template
        : new PromptTemplate(options.template.id, options.template.text, {
            version: options.template.version,
          });
    /** @type {Record<string, string | number>} */
    const fixed = {};
    if (template !== undefined) {
      fixed[attr.PROMPT_TEMPLATE_ID] = template.id;
      fixed[attr.PROMPT_TEMPLATE_VERSION] = template.version;
      fixed[attr.PROMPT_TEMPLATE_HASH] = template.hash;
    }
    if (options.query !== undefined) {
      fixed[attr.QUERY_FINGERPRINT] = queryFingerprint(options.query);
    }
    if (options.turnIndex !== undefined) {
      fixed[attr.TURN_INDEX] = options.turnIndex;
    }
    if (options.dataSourceId !== undefined) {
      fixed[attr.DATA_SOURCE_ID] = options.dataSourceId;
    }
    if (options.indexVersion !== undefined) {
      fixed[attr.RETRIEVAL_INDEX_VERSION] = options.indexVersion;
    }
    /** The session id, if any. */
    this.sessionId = options.sessionId;
    /** The prompt template, if any. */
    this.template = template;
    /** @type {Readonly<Record<string, string | number>>} */
    this.attributes = Object.freeze(fixed);
    /** @type {string[] | undefined} */
    this._chunkIds = undefined;
    /** @type {import("@opentelemetry/api").SpanContext | undefined} */
    this._response = undefined;
    /** @type {string | undefined} */
    this._semanticFingerprint = undefined;
    if (options.chunkIds !== undefined) {
      this.setChunkIds(options.chunkIds);
    }
  }

  /**
   * The chunks placed in the prompt, in prompt order (after rerank and filtering). Spans of
   * the turn that end after this call carry them as `closedloop.context.chunk_ids`.
   * @param {string[]} chunkIds
   */
  setChunkIds(chunkIds) {
    if (!Array.isArray(chunkIds) || !chunkIds.every((id) => typeof id === "string")) {
      throw new TypeError("chunk ids must be an array of strings");
    }
    this._chunkIds = [...chunkIds];
  }

  /** @returns {readonly string[] | undefined} */
  get chunkIds() {
    return this._chunkIds;
  }

  /**
   * Fingerprints the query's embedding (the one the app computed for retrieval) with
   * `hasher`; the vector is not kept. The fingerprint still tells roughly what the query is
   * about, so it is content: only a `ClosedloopSpanProcessor` built with
   * `{ captureQueryEmbedding: true }` writes it (`closedloop.query.semantic_fingerprint`), on
   * the spans of the turn started after this call.
   * @param {import("./semantic.js").SemanticHasher} hasher
   * @param {ArrayLike<number>} embedding
   */
  setQueryEmbedding(hasher, embedding) {
    this._semanticFingerprint = hasher.fingerprint(embedding);
  }

  /** @returns {string | undefined} */
  get querySemanticFingerprint() {
    return this._semanticFingerprint;
  }

  /**
   * The span context of the model call that answered in this turn: the last span ended
   * inside the turn that an instrumentation marked as a model call (`gen_ai.operation.name`
   * chat, generate_content or text_completion; OpenInference kind LLM; OpenLLMetry request
   * type chat or completion). Undefined until one ended.
   * @returns {import("@opentelemetry/api").SpanContext | undefined}
   */
  get responseSpanContext() {
    return this._response;
  }

  /**
   * The reference to this turn's answer for the application's client, with a feedback token
   * when a secret is given: the model call's span (`responseSpanContext`), or `span` when
   * given (the request's own span, which the receiver resolves to the model call beneath it).
   * @param {{ secret?: string | Uint8Array, ttlSecs?: number, now?: Date,
   *   span?: import("@opentelemetry/api").Span | SpanContext }} [options]
   * @returns {ResponseRef}
   */
  responseRef(options = {}) {
    const target = options.span ?? this._response;
    if (target === undefined) {
      throw new Error("no model call has ended in this turn, and no span was given");
    }
    return responseRef(target, options);
  }
}

/**
 * The reference to an answer's span for the application's client, with a feedback token
 * when a secret is given.
 * @param {import("@opentelemetry/api").Span | import("@opentelemetry/api").SpanContext} span
 * @param {{ secret?: string | Uint8Array, ttlSecs?: number, now?: Date }} [options]
 * @returns {ResponseRef}
 */
export function responseRef(span, options = {}) {
  const spanContext = "spanContext" in span ? span.spanContext() : span;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, "0");
  /** @type {ResponseRef} */
  const ref = {
    trace_id: spanContext.traceId,
    span_id: spanContext.spanId,
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`,
  };
  if (options.secret !== undefined) {
    const now = (options.now ?? new Date()).getTime() / 1000;
    const ttl = options.ttlSecs ?? DEFAULT_TOKEN_TTL_SECS;
    ref.feedback_token = issueFeedbackToken(
      options.secret,
      spanContext.traceId,
      spanContext.spanId,
      now + ttl,
    );
  }
  return ref;
}

/**
 * `ctx` (the active context by default) with `turn` in it.
 * @param {Turn} turn
 * @param {import("@opentelemetry/api").Context} [ctx]
 */
export function contextWithTurn(turn, ctx = otelContext.active()) {
  return ctx.setValue(TURN_KEY, turn);
}

/**
 * The turn in `ctx` (the active context by default), if any.
 * @param {import("@opentelemetry/api").Context} [ctx]
 * @returns {Turn | undefined}
 */
export function currentTurn(ctx = otelContext.active()) {
  const turn = ctx.getValue(TURN_KEY);
  return turn instanceof Turn ? turn : undefined;
}

/**
 * Runs `fn` with a new turn active: the spans any instrumentation starts inside it, directly
 * or in callbacks and awaits that keep the context (an async context manager is needed, as
 * the Node SDK installs), get the turn's attributes from `ClosedloopSpanProcessor`.
 * @template T
 * @param {TurnOptions | Turn} options
 * @param {(turn: Turn) => T} fn
 * @returns {T}
 */
export function withTurn(options, fn) {
  const turn = options instanceof Turn ? options : new Turn(options);
  return otelContext.with(contextWithTurn(turn), () => {
    if (currentTurn() !== turn && !warnedNoContextManager) {
      warnedNoContextManager = true;
      diag.warn(
        "closedloop: withTurn found no OpenTelemetry context manager, so no span gets the " +
          "turn's attributes; register one (NodeTracerProvider.register() does)",
      );
    }
    return fn(turn);
  });
}

let warnedNoContextManager = false;

/**
 * Whether a span's attributes mark it as a model call, by any of the conventions the
 * receiver reads.
 * @param {import("@opentelemetry/api").Attributes} attributes
 */
export function isModelCall(attributes) {
  const op = attributes[attr.GEN_AI_OPERATION_NAME];
  if (op !== undefined) {
    return op === "chat" || op === "generate_content" || op === "text_completion";
  }
  const requestType = attributes[attr.OPENLLMETRY_REQUEST_TYPE];
  return (
    attributes[attr.OPENINFERENCE_SPAN_KIND] === "LLM" ||
    requestType === "chat" ||
    requestType === "completion"
  );
}
