// The shared test vectors (clients/testdata/vectors.json, written by closedloop-tracing):
// feedback tokens, query fingerprints, template versions and semantic fingerprints, reproduced
// exactly.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";

import {
  FeedbackTokenError,
  PromptTemplate,
  SemanticHasher,
  issueFeedbackToken,
  queryFingerprint,
  semanticHamming,
  semanticSimilarity,
  verifyFeedbackToken,
} from "../src/index.js";

const vectors = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../../testdata/vectors.json"), "utf8"),
);

test("every token vector is issued byte for byte", () => {
  assert.ok(vectors.tokens.length > 0);
  for (const v of vectors.tokens) {
    assert.equal(issueFeedbackToken(v.secret, v.trace_id, v.span_id, v.expires_at_unix), v.token);
    const asDate = new Date(v.expires_at_unix * 1000 + 999);
    assert.equal(issueFeedbackToken(v.secret, v.trace_id, v.span_id, asDate), v.token);
  }
});

test("every token vector verifies until it expires, and not with another secret", () => {
  for (const v of vectors.tokens) {
    const verified = verifyFeedbackToken(v.secret, v.token, v.expires_at_unix - 1);
    assert.deepEqual(verified, {
      traceId: v.trace_id,
      spanId: v.span_id,
      expiresAt: new Date(v.expires_at_unix * 1000),
    });
    assert.throws(
      () => verifyFeedbackToken(v.secret, v.token, v.expires_at_unix),
      (e) => e instanceof FeedbackTokenError && e.code === "expired",
    );
    assert.throws(
      () => verifyFeedbackToken(`${v.secret}x`, v.token, 0),
      (e) => e instanceof FeedbackTokenError && e.code === "bad_signature",
    );
  }
});

test("a token tampered with in any byte after the version fails its signature", () => {
  const v = vectors.tokens[0];
  const bytes = Buffer.from(v.token, "base64url");
  for (let i = 1; i < bytes.length; i++) {
    const tampered = Buffer.from(bytes);
    tampered[i] ^= 0x01;
    assert.throws(
      () => verifyFeedbackToken(v.secret, tampered.toString("base64url"), 0),
      (e) => e.code === "bad_signature",
      `byte ${i}`,
    );
  }
});

test("malformed tokens are refused as such, before any signature check", () => {
  const secret = vectors.tokens[0].secret;
  const code = (/** @type {string} */ token) => {
    try {
      verifyFeedbackToken(secret, token, 0);
    } catch (e) {
      return e instanceof FeedbackTokenError ? e.code : String(e);
    }
    return "accepted";
  };
  assert.equal(code("not base64!"), "malformed");
  assert.equal(code(""), "malformed");
  assert.equal(code(Buffer.alloc(10, 1).toString("base64url")), "malformed");
  assert.equal(code(Buffer.alloc(65, 2).toString("base64url")), "unsupported_version");
  // Standard base64 with padding is not base64url.
  assert.equal(code(`${Buffer.alloc(65, 1).toString("base64")}`), "malformed");
  // A last character with stray low bits decodes leniently elsewhere; not here.
  const good = vectors.tokens[0].token;
  const last = good.at(-1);
  const sibling = last === "A" ? "B" : String.fromCharCode(last.charCodeAt(0) + 1);
  assert.equal(code(good.slice(0, -1) + sibling), "malformed");
  // Surrounding whitespace is trimmed, as the receiver does.
  assert.equal(code(` ${good}\n`), "accepted");
  // Rust's trim keeps a byte order mark, which is no base64url.
  assert.equal(code(`\ufeff${good}`), "malformed");
});

test("a signed token for an all-zero span or an expiry past any date is malformed", () => {
  const secret = "0123456789abcdef0123456789abcdef";
  const sign = (/** @type {Buffer} */ payload) => {
    const tag = createHmac("sha256", secret).update(payload).digest();
    return Buffer.concat([payload, tag]).toString("base64url");
  };
  const payload = Buffer.alloc(33);
  payload[0] = 1;
  Buffer.from("4bf92f3577b34da6a3ce929d0e0e4736", "hex").copy(payload, 1);
  payload.writeBigUInt64BE(2000n, 25);
  assert.throws(
    () => verifyFeedbackToken(secret, sign(payload), 0),
    (e) => e.code === "malformed",
  );
  Buffer.from("00f067aa0ba902b7", "hex").copy(payload, 17);
  assert.equal(verifyFeedbackToken(secret, sign(payload), 0).spanId, "00f067aa0ba902b7");
  payload.writeBigUInt64BE(0xffffffffffffffffn, 25);
  assert.throws(
    () => verifyFeedbackToken(secret, sign(payload), 0),
    (e) => e.code === "malformed",
  );
});

test("ids that are not hex or all zeros cannot be signed", () => {
  const secret = "0123456789abcdef0123456789abcdef";
  assert.throws(() => issueFeedbackToken(secret, "xyz", "00f067aa0ba902b7", 1), TypeError);
  assert.throws(() => issueFeedbackToken(secret, "0".repeat(32), "00f067aa0ba902b7", 1), TypeError);
});

test("every fingerprint vector is reproduced", () => {
  assert.ok(vectors.fingerprints.length > 0);
  for (const v of vectors.fingerprints) {
    assert.equal(queryFingerprint(v.query), v.fingerprint, JSON.stringify(v.query));
  }
});

test("every template vector has the same hash and version", () => {
  for (const v of vectors.templates) {
    const template = new PromptTemplate("t", v.text);
    assert.equal(template.hash, v.hash);
    assert.equal(template.version, v.version);
    const pinned = new PromptTemplate("t", v.text, { version: "v3" });
    assert.equal(pinned.version, "v3");
    assert.equal(pinned.hash, v.hash);
  }
});

test("every semantic fingerprint vector is reproduced, from arrays and typed arrays", () => {
  const cases = vectors.semantic_fingerprints;
  assert.ok(cases.some((v) => v.model === "all-MiniLM-L6-v2" && v.embedding.length === 384));
  assert.ok(cases.some((v) => v.embedding.every((x) => x < 0)));
  assert.ok(cases.some((v) => Math.max(...v.embedding.map(Math.abs)) < 1e-20));
  for (const v of cases) {
    const hasher = new SemanticHasher(v.model, v.embedding.length);
    assert.equal(hasher.fingerprint(v.embedding), v.fingerprint, v.model);
    assert.equal(hasher.fingerprint(Float32Array.from(v.embedding)), v.fingerprint, v.model);
    assert.equal(hasher.fingerprint(v.embedding.map((x) => 2 * x)), v.fingerprint, v.model);
  }
});

test("embedding values are rounded to float32 first", () => {
  const v = vectors.semantic_fingerprints.find(
    (c) => c.model === "all-MiniLM-L6-v2" && c.embedding.some((x) => x * 64 !== Math.trunc(x * 64)),
  );
  // A quarter of a float32 step away: the same float32 values, as the crate would see them.
  const nudged = v.embedding.map((x) => x + Math.abs(x) * 2 ** -25);
  assert.ok(nudged.every((x, i) => x !== v.embedding[i] && Math.fround(x) === v.embedding[i]));
  assert.equal(new SemanticHasher(v.model, 384).fingerprint(nudged), v.fingerprint);
});

test("every semantic similarity vector is reproduced", () => {
  for (const v of vectors.semantic_similarities) {
    assert.equal(semanticHamming(v.a, v.b), v.hamming ?? undefined);
    const similarity = semanticSimilarity(v.a, v.b);
    if (v.similarity === null) {
      assert.equal(similarity, undefined);
    } else {
      // Math.cos may differ from Rust's libm in the last place, never more.
      assert.ok(Math.abs(similarity - v.similarity) <= 1e-15, `${similarity} ${v.similarity}`);
    }
  }
});

test("what cannot be hashed or compared is refused", () => {
  for (const model of ["", "a:b", "two words", "nbsp\u00a0", "line\u2028sep", "nel\u0085"]) {
    assert.throws(() => new SemanticHasher(model, 4), TypeError, JSON.stringify(model));
  }
  assert.throws(() => new SemanticHasher("m", -1), RangeError);
  assert.throws(() => new SemanticHasher("m", 1.5), RangeError);
  const hasher = new SemanticHasher("m", 4);
  for (const bad of [
    [1, 2],
    [0, 0, -0, 0],
    [1, NaN, 0, 0],
    [1, Infinity, 0, 0],
    // Beyond float32's range, and below its smallest subnormal: infinite, and zero.
    [1e39, 1, 0, 0],
    [1e-50, 0, 0, -1e-50],
  ]) {
    assert.throws(() => hasher.fingerprint(bad), RangeError, String(bad));
  }
  assert.throws(() => hasher.fingerprint(["a", "b", "c", "d"]), TypeError);
  const a = vectors.semantic_similarities[0].a;
  assert.equal(semanticSimilarity(a, a), 1);
  assert.equal(semanticSimilarity(a, a.replace("all-MiniLM-L6-v2", "another-model")), undefined);
  for (const bad of [
    "sh512:m:00",
    `mh64v2:m:${"0".repeat(128)}`,
    `sh512::${"0".repeat(128)}`,
    `sh512:m:${"g".repeat(128)}`,
    `sh512:${"0".repeat(128)}`,
    `sh512:a:b:${"0".repeat(128)}`,
  ]) {
    assert.throws(() => semanticSimilarity(a, bad), TypeError, bad);
  }
});
