// Type declarations of closedloop-client (hand-written; the package has no build step).

import type { Attributes, Context, Span, SpanContext, Tracer } from "@opentelemetry/api";

/** The scheme of the fingerprints `queryFingerprint` writes: `mh64v3`. */
export declare const FINGERPRINT_SCHEME: "mh64v3";

/**
 * The `mh64v3` fingerprint of a query, the value of `closedloop.query.fingerprint`, exactly as
 * closedloop-tracing computes it: `mh64v3:`, 260 lowercase hex digits and two per contrast mark
 * (a side of a pair of opposite actions such as "enable" / "disable" that the query uses), or
 * `mh64v3:` alone when no words are left after normalisation.
 */
export declare function queryFingerprint(query: string): string;

/** The scheme of the fingerprints `SemanticHasher` writes: `sh512`. */
export declare const SEMANTIC_FINGERPRINT_SCHEME: "sh512";

/**
 * The cosine estimate at or above which two consecutive queries are likely the same question
 * asked differently, for `sh512` fingerprints of `all-MiniLM-L6-v2` embeddings: 0.75.
 */
export declare const SUGGESTED_SEMANTIC_THRESHOLD: number;

/**
 * Computes `sh512` semantic fingerprints (the value of `closedloop.query.semantic_fingerprint`)
 * of one embedding model's vectors, exactly as closedloop-tracing does: a 512-bit SimHash of
 * the embedding, seeded by the model's name. The vector never leaves the process, but the hash
 * still tells roughly what the query is about: send it only where content may go.
 */
export declare class SemanticHasher {
  /**
   * Throws a `TypeError` for a model name that is empty or holds `:` or whitespace, a
   * `RangeError` for a dimension that is not a non-negative integer.
   */
  constructor(model: string, dimensions: number);
  /** The embedding model's name, part of every fingerprint. */
  readonly model: string;
  /** The embedding length this hasher takes. */
  readonly dimensions: number;
  /**
   * `sh512:<model>:` and 128 lowercase hex digits. Values are rounded to float32 first; only
   * the direction matters. Throws a `RangeError` for another length, a NaN or an infinity, or
   * an all-zero vector.
   */
  fingerprint(embedding: ArrayLike<number>): string;
}

/**
 * The estimated cosine similarity of two semantic fingerprints' embeddings, cos(π·h/512) for
 * `h` differing bits; `undefined` across models. Throws a `TypeError` for a value that is not
 * a semantic fingerprint.
 */
export declare function semanticSimilarity(a: string, b: string): number | undefined;

/** The number of bits in which two semantic fingerprints differ; `undefined` across models. */
export declare function semanticHamming(a: string, b: string): number | undefined;

/** Why a feedback token was refused. */
export declare class FeedbackTokenError extends Error {
  readonly name: "FeedbackTokenError";
  readonly code: "malformed" | "unsupported_version" | "bad_signature" | "expired";
}

/** A feedback token whose signature and expiry were checked. */
export interface VerifiedFeedbackToken {
  /** The judged response's trace, 32 lowercase hex digits. */
  traceId: string;
  /** The judged response span, 16 lowercase hex digits. */
  spanId: string;
  /** When the token stops being accepted (whole seconds). */
  expiresAt: Date;
}

/**
 * Signs a token granting feedback on one response span until `expiresAt` (a `Date` or Unix
 * seconds, rounded down to whole seconds), byte for byte as closedloop-tracing does.
 */
export declare function issueFeedbackToken(
  secret: string | Uint8Array,
  traceId: string,
  spanId: string,
  expiresAt: Date | number,
): string;

/**
 * Checks a feedback token's layout, signature (in constant time) and expiry against `now`
 * (the current time by default). Throws `FeedbackTokenError`.
 */
export declare function verifyFeedbackToken(
  secret: string | Uint8Array,
  token: string,
  now?: Date | number,
): VerifiedFeedbackToken;

/**
 * A prompt template's identity: its id, its version (the first 12 hex digits of the SHA-256
 * of the text unless pinned) and its hash (`sha256:` and 64 hex digits). The text itself is
 * never put on a span.
 */
export declare class PromptTemplate {
  constructor(id: string, text: string, options?: { version?: string });
  readonly id: string;
  readonly version: string;
  readonly hash: string;
}

/** What a turn knows about the answer being produced. */
export interface TurnOptions {
  /** `session.id`. */
  sessionId?: string;
  /** The prompt template; only its id, version and hash go on the spans. */
  template?: PromptTemplate | { id: string; text: string; version?: string };
  /** The user's query as typed; only its fingerprint leaves the process. */
  query?: string;
  /** The chunks placed in the prompt, in prompt order. */
  chunkIds?: string[];
  /** `closedloop.turn.index`. */
  turnIndex?: number;
  /** `gen_ai.data_source.id`. */
  dataSourceId?: string;
  /** `closedloop.retrieval.index.version`. */
  indexVersion?: string;
}

/**
 * The reference to one answer that the application hands its client: the JSON form of
 * closedloop-tracing's `ResponseRef`, accepted as `response` by `POST /v1/feedback`.
 */
export interface ResponseRef {
  trace_id: string;
  span_id: string;
  traceparent: string;
  feedback_token?: string;
}

/** Options for minting a `ResponseRef`. */
export interface ResponseRefOptions {
  /** The receiver's `feedback.token_secret`; without it the reference has no token. */
  secret?: string | Uint8Array;
  /** How long the token is valid, in seconds (default one day). */
  ttlSecs?: number;
  /** The time the token's validity starts from (default now). */
  now?: Date;
}

/** One user turn, carried in the OpenTelemetry context. */
export declare class Turn {
  constructor(options?: TurnOptions);
  readonly sessionId: string | undefined;
  readonly template: PromptTemplate | undefined;
  /** The attributes put on every span of the turn when it starts. */
  readonly attributes: Readonly<Record<string, string | number>>;
  /** The chunks placed in the prompt, as last set. */
  readonly chunkIds: readonly string[] | undefined;
  /**
   * The last span ended in the turn that an instrumentation marked as a model call
   * (`gen_ai.operation.name` chat, generate_content or text_completion; OpenInference kind
   * LLM; OpenLLMetry request type chat or completion).
   */
  readonly responseSpanContext: SpanContext | undefined;
  /** Sets the chunks placed in the prompt; spans of the turn that end later carry them. */
  setChunkIds(chunkIds: string[]): void;
  /**
   * Fingerprints the query's embedding with `hasher` (the vector is not kept). Written on the
   * turn's spans started later only by a processor with `captureQueryEmbedding: true`.
   */
  setQueryEmbedding(hasher: SemanticHasher, embedding: ArrayLike<number>): void;
  /** The `sh512` fingerprint of the query's embedding, once set. */
  readonly querySemanticFingerprint: string | undefined;
  /**
   * The reference to the turn's model call (or to `span`, e.g. the request's own span), with
   * a feedback token when `secret` is given. Throws when no model call has ended and no span
   * is given.
   */
  responseRef(options?: ResponseRefOptions & { span?: Span | SpanContext }): ResponseRef;
}

/** Runs `fn` with a new turn (or `options`, a `Turn`) in the active context. */
export declare function withTurn<T>(options: TurnOptions | Turn, fn: (turn: Turn) => T): T;
/** The turn in `ctx` (the active context by default). */
export declare function currentTurn(ctx?: Context): Turn | undefined;
/** `ctx` (the active context by default) with `turn` in it. */
export declare function contextWithTurn(turn: Turn, ctx?: Context): Context;
/** The reference to a span for the application's client, with a token when `secret` is given. */
export declare function responseRef(
  span: Span | SpanContext,
  options?: ResponseRefOptions,
): ResponseRef;
/** Whether attributes mark a span as a model call, by any convention the receiver reads. */
export declare function isModelCall(attributes: Attributes): boolean;

/**
 * A `SpanProcessor` for `@opentelemetry/sdk-trace-base` 2.x that adds a turn's closedloop
 * attributes to every span started inside it, of any instrumentation. It exports nothing:
 * register it beside the exporting processor.
 */
export declare class ClosedloopSpanProcessor {
  /**
   * `captureQueryEmbedding` (off by default, like content) also writes a turn's
   * `closedloop.query.semantic_fingerprint`.
   */
  constructor(options?: { captureQueryEmbedding?: boolean });
  onStart(span: unknown, parentContext: Context): void;
  onEnding(span: unknown): void;
  onEnd(span: unknown): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The `closedloop.feedback.signal` values. */
export declare const FEEDBACK_SIGNALS: readonly FeedbackSignal[];
/** The `closedloop.failure.category` values. */
export declare const FAILURE_CATEGORIES: readonly FailureCategory[];

export type FeedbackSignal =
  | "thumbs_up"
  | "thumbs_down"
  | "rating"
  | "regenerate"
  | "rephrase"
  | "edit"
  | "copy"
  | "abandon"
  | "escalate"
  | "report"
  | "label";

export type FailureCategory =
  | "irrelevant_context"
  | "missing_context"
  | "hallucination"
  | "wrong_answer"
  | "incomplete"
  | "format"
  | "refusal"
  | "harmful"
  | "other";

/** The feedback API path: `/v1/feedback`. */
export declare const FEEDBACK_PATH: "/v1/feedback";

/** Why the receiver refused feedback. */
export declare class FeedbackApiError extends Error {
  readonly name: "FeedbackApiError";
  /** The HTTP status. */
  readonly status: number;
  /** The receiver's error code: `invalid_token`, `token_mismatch`, `invalid_field`... */
  readonly code: string;
  /** The receiver's `Retry-After`, in seconds, when it sent one. */
  readonly retryAfterSecs: number | undefined;
}

/** The body of `POST /v1/feedback`, in this package's spelling. */
export interface FeedbackRequest {
  /** The judged answer, as the application handed it to its client. */
  response: ResponseRef | { trace_id: string; span_id: string; feedback_token?: string };
  signal: FeedbackSignal;
  /** When `response` carries no `feedback_token`. */
  feedbackToken?: string;
  /** The score from 0.0 (worst) to 1.0 (best). */
  value?: number;
  /** A 1-based rating on `scale`, instead of `value`. */
  rating?: number;
  scale?: number;
  category?: FailureCategory;
  /** Kept only where the receiver captures comments. */
  comment?: string;
  /** A repeated id is counted once. */
  idempotencyId?: string;
  /** The response's `gen_ai.response.id`. */
  responseId?: string;
  sessionId?: string;
}

/**
 * Posts feedback to the receiver (`endpoint` is its HTTP base URL or the full feedback URL).
 * Throws `FeedbackApiError` when the receiver refuses it.
 */
export declare function sendFeedback(
  endpoint: string,
  feedback: FeedbackRequest,
  options?: { fetch?: typeof fetch; signal?: AbortSignal },
): Promise<{ feedbackId: string; duplicate: boolean }>;

/** One piece of feedback for `recordFeedback`. */
export interface Feedback {
  signal: FeedbackSignal;
  /** Derived from the signal by default. */
  kind?: "explicit" | "implicit";
  /** 0.0 to 1.0; implied by thumbs, copy and the negative signals. */
  value?: number;
  category?: FailureCategory;
  /** Exported only with `captureComments`. */
  comment?: string;
  /** Derived from the signal by default. */
  source?: "user" | "app" | "detector" | "reviewer";
  /** The idempotency id. */
  id?: string;
  /** The judged response's `gen_ai.response.id`. */
  responseId?: string;
  sessionId?: string;
  /** Exported as given: hash it first if it identifies a person. */
  userId?: string;
}

/**
 * Records one feedback span in the judged span's trace, with one link to the judged span
 * (`closedloop.link.type` = `judged_response`), as closedloop-tracing's `record_feedback`.
 */
export declare function recordFeedback(
  tracer: Tracer,
  response: { trace_id: string; span_id: string } | { traceId: string; spanId: string },
  feedback: Feedback,
  options?: { captureComments?: boolean },
): void;
