// The OpenTelemetry span processor that adds a turn's closedloop attributes to the spans of
// any instrumentation.

import * as attr from "./attributes.js";
import { currentTurn, isModelCall } from "./turn.js";

/**
 * A `SpanProcessor` for `@opentelemetry/sdk-trace-base` 2.x: every span started inside a turn
 * (`withTurn`) gets the turn's session id, template id, version and hash (also as
 * `gen_ai.prompt.name`), query fingerprint, turn index, data source and index version when it
 * starts, and the turn's chunk ids when it ends. Attributes the instrumentation already set
 * at start are kept. Feedback spans are left alone. It exports nothing itself: register it
 * beside the exporting processor.
 *
 * With `captureQueryEmbedding: true` it also writes the semantic fingerprint a turn got from
 * `turn.setQueryEmbedding` (`closedloop.query.semantic_fingerprint`). Off by default, like
 * content: the vector never leaves, but the hash tells roughly what the query is about.
 */
export class ClosedloopSpanProcessor {
  /** @param {{ captureQueryEmbedding?: boolean }} [options] */
  constructor(options = {}) {
    /** @type {WeakMap<object, import("./turn.js").Turn>} */
    this._turns = new WeakMap();
    this._captureQueryEmbedding = options.captureQueryEmbedding === true;
  }

  /**
   * @param {import("@opentelemetry/sdk-trace-base").Span} span
   * @param {import("@opentelemetry/api").Context} parentContext
   */
  onStart(span, parentContext) {
    const turn = currentTurn(parentContext);
    if (turn === undefined || span.attributes[attr.FEEDBACK_SIGNAL] !== undefined) {
      return;
    }
    this._turns.set(span, turn);
    /** @type {(key: string, value: import("@opentelemetry/api").AttributeValue) => void} */
    const setIfAbsent = (key, value) => {
      if (span.attributes[key] === undefined) {
        span.setAttribute(key, value);
      }
    };
    for (const [key, value] of Object.entries(turn.attributes)) {
      setIfAbsent(key, value);
    }
    if (turn.template !== undefined) {
      setIfAbsent(attr.GEN_AI_PROMPT_NAME, turn.template.id);
    }
    if (turn.sessionId !== undefined) {
      setIfAbsent(attr.SESSION_ID, turn.sessionId);
    }
    if (turn.chunkIds !== undefined) {
      setIfAbsent(attr.CONTEXT_CHUNK_IDS, [...turn.chunkIds]);
    }
    if (this._captureQueryEmbedding && turn.querySemanticFingerprint !== undefined) {
      setIfAbsent(attr.QUERY_SEMANTIC_FINGERPRINT, turn.querySemanticFingerprint);
    }
  }

  /** @param {import("@opentelemetry/sdk-trace-base").Span} span */
  onEnding(span) {
    const turn = this._turns.get(span);
    if (turn === undefined) {
      return;
    }
    this._turns.delete(span);
    if (turn.chunkIds !== undefined && span.attributes[attr.CONTEXT_CHUNK_IDS] === undefined) {
      span.setAttribute(attr.CONTEXT_CHUNK_IDS, [...turn.chunkIds]);
    }
    if (isModelCall(span.attributes)) {
      turn._response = span.spanContext();
    }
  }

  /** @param {import("@opentelemetry/sdk-trace-base").ReadableSpan} _span */
  onEnd(_span) {}

  /** @returns {Promise<void>} */
  forceFlush() {
    return Promise.resolve();
  }

  /** @returns {Promise<void>} */
  shutdown() {
    return Promise.resolve();
  }
}
