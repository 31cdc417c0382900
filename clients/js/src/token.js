// Signed, expiring feedback tokens, byte for byte as closedloop-tracing writes them
// (crates/tracing/src/token.rs): base64url without padding of a version byte, the trace id
// (16 bytes), the span id (8 bytes), the expiry in Unix seconds (8 bytes, big-endian) and an
// HMAC-SHA256 over those 33 bytes keyed with the shared secret.

import { createHmac, timingSafeEqual } from "node:crypto";

/** The version byte of the token layout this module writes. */
const VERSION = 1;
/** Version, trace id, span id, expiry. */
const PAYLOAD_LEN = 1 + 16 + 8 + 8;
/** HMAC-SHA256 tag length. */
const TAG_LEN = 32;
/** The latest expiry a `Date` holds, in Unix seconds. */
const MAX_DATE_SECS = 8_640_000_000_000;

/**
 * Why a feedback token was refused. `code` is one of `malformed` (not base64url, the wrong
 * length, an all-zero trace or span id, or an expiry past what a `Date` holds),
 * `unsupported_version`, `bad_signature` (forged, tampered with, or signed with another
 * secret) and `expired`.
 */
export class FeedbackTokenError extends Error {
  /**
   * @param {"malformed" | "unsupported_version" | "bad_signature" | "expired"} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "FeedbackTokenError";
    this.code = code;
  }
}

/**
 * @param {string | Uint8Array} secret
 * @returns {Buffer}
 */
function secretBytes(secret) {
  return typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
}

/**
 * @param {string} hex
 * @param {number} bytes
 * @param {string} what
 */
function idBytes(hex, bytes, what) {
  if (typeof hex !== "string" || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(hex)) {
    throw new TypeError(`${what} must be ${bytes * 2} hex digits`);
  }
  const id = Buffer.from(hex, "hex");
  if (id.every((b) => b === 0)) {
    throw new TypeError(`${what} must not be all zeros`);
  }
  return id;
}

/**
 * @param {Date | number} when a `Date`, or Unix seconds
 * @returns {number} whole Unix seconds
 */
function unixSeconds(when) {
  const secs = when instanceof Date ? when.getTime() / 1000 : when;
  if (!Number.isFinite(secs)) {
    throw new TypeError("the time must be a valid Date or a finite number of Unix seconds");
  }
  return Math.max(0, Math.floor(secs));
}

/**
 * Signs a token granting feedback on one response span until `expiresAt` (rounded down to
 * whole seconds), as `closedloop_tracing::issue_feedback_token` does.
 *
 * @param {string | Uint8Array} secret the receiver's `feedback.token_secret` (at least 32 bytes)
 * @param {string} traceId 32 hex digits
 * @param {string} spanId 16 hex digits
 * @param {Date | number} expiresAt a `Date`, or Unix seconds
 * @returns {string}
 */
export function issueFeedbackToken(secret, traceId, spanId, expiresAt) {
  const payload = Buffer.alloc(PAYLOAD_LEN);
  payload[0] = VERSION;
  idBytes(traceId, 16, "traceId").copy(payload, 1);
  idBytes(spanId, 8, "spanId").copy(payload, 17);
  payload.writeBigUInt64BE(BigInt(unixSeconds(expiresAt)), 25);
  const tag = createHmac("sha256", secretBytes(secret)).update(payload).digest();
  return Buffer.concat([payload, tag]).toString("base64url");
}

/**
 * `token` without leading and trailing Unicode White_Space, as Rust's `str::trim` (which,
 * unlike `String.prototype.trim`, keeps a byte order mark).
 * @param {string} token
 */
function trimWhiteSpace(token) {
  return token.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, "");
}

/**
 * Strict base64url without padding, as the Rust side decodes it: only the URL-safe alphabet,
 * no padding, and no stray bits in the last character.
 * @param {string} text
 */
function decodeBase64Url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    return undefined;
  }
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

/**
 * @typedef {object} VerifiedFeedbackToken
 * @property {string} traceId the judged response's trace, 32 lowercase hex digits
 * @property {string} spanId the judged response span, 16 lowercase hex digits
 * @property {Date} expiresAt when the token stops being accepted (whole seconds)
 */

/**
 * Checks a feedback token: its layout, its signature (compared in constant time), then its
 * expiry against `now`, in the order `closedloop_tracing::verify_feedback_token` does.
 *
 * @param {string | Uint8Array} secret
 * @param {string} token
 * @param {Date | number} [now] a `Date`, or Unix seconds; the current time by default
 * @returns {VerifiedFeedbackToken}
 * @throws {FeedbackTokenError}
 */
export function verifyFeedbackToken(secret, token, now = new Date()) {
  const bytes = typeof token === "string" ? decodeBase64Url(trimWhiteSpace(token)) : undefined;
  if (bytes === undefined || bytes.length === 0) {
    throw new FeedbackTokenError("malformed", "malformed feedback token");
  }
  if (bytes[0] !== VERSION) {
    throw new FeedbackTokenError(
      "unsupported_version",
      `unsupported feedback token version ${bytes[0]}`,
    );
  }
  if (bytes.length !== PAYLOAD_LEN + TAG_LEN) {
    throw new FeedbackTokenError("malformed", "malformed feedback token");
  }
  const payload = bytes.subarray(0, PAYLOAD_LEN);
  const tag = bytes.subarray(PAYLOAD_LEN);
  const expected = createHmac("sha256", secretBytes(secret)).update(payload).digest();
  if (!timingSafeEqual(tag, expected)) {
    throw new FeedbackTokenError("bad_signature", "feedback token signature does not match");
  }
  const expiry = payload.readBigUInt64BE(25);
  if (expiry > BigInt(MAX_DATE_SECS)) {
    throw new FeedbackTokenError("malformed", "malformed feedback token");
  }
  const expiresAt = Number(expiry);
  if (unixSeconds(now) >= expiresAt) {
    throw new FeedbackTokenError("expired", "feedback token expired");
  }
  const traceId = payload.subarray(1, 17);
  const spanId = payload.subarray(17, 25);
  if (traceId.every((b) => b === 0) || spanId.every((b) => b === 0)) {
    throw new FeedbackTokenError("malformed", "malformed feedback token");
  }
  return {
    traceId: traceId.toString("hex"),
    spanId: spanId.toString("hex"),
    expiresAt: new Date(expiresAt * 1000),
  };
}
