// The `sh512` semantic query fingerprint, as closedloop-tracing computes it
// (crates/tracing/src/semantic.rs): a 512-bit random-hyperplane SimHash of the query's
// embedding, with ±1 hyperplanes drawn from SplitMix64 seeded by FNV-1a over
// `closedloop sh512`, the model's name and the dimension. Checked bit for bit against
// clients/testdata/vectors.json.
//
// Each value is rounded to float32 first (the crate takes f32) and the projections are summed
// in float64 in dimension order, so every bit is the crate's. The vector never leaves the
// process; the hash still tells roughly what the query is about, so it is content.

/** The scheme name of the semantic fingerprints this module writes. */
export const SEMANTIC_FINGERPRINT_SCHEME = "sh512";

/**
 * The cosine estimate at or above which two consecutive queries are likely the same question
 * asked differently, for `sh512` fingerprints of `all-MiniLM-L6-v2` embeddings (the receiver's
 * `[detectors.rephrase] semantic_threshold`).
 */
export const SUGGESTED_SEMANTIC_THRESHOLD = 0.75;

const BITS = 512;
/** 32-bit halves of the fingerprint's 8 64-bit words. */
const HALVES = BITS / 32;

const MASK64 = (1n << 64n) - 1n;
const MASK32 = 0xffffffffn;

// Rust's char::is_whitespace (Unicode White_Space); JavaScript's \s also takes U+FEFF and not
// U+0085.
const WHITESPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
const FINGERPRINT = /^sh512:(.+):([0-9a-fA-F]{128})$/su;

/**
 * The 64-bit FNV-1a hash of `bytes`.
 * @param {Uint8Array} bytes
 */
function fnv1a(bytes) {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK64;
  }
  return h;
}

/** Computes `sh512` fingerprints of one embedding model's vectors. */
export class SemanticHasher {
  /**
   * Build it once per model and reuse it: it holds the model's 512 hyperplanes. Use the
   * model's own name (`all-MiniLM-L6-v2`, `text-embedding-3-small`): it is part of every
   * fingerprint, and must be non-empty without `:` or whitespace.
   * @param {string} model
   * @param {number} dimensions
   */
  constructor(model, dimensions) {
    if (
      typeof model !== "string" ||
      model === "" ||
      model.includes(":") ||
      WHITESPACE.test(model)
    ) {
      throw new TypeError(
        "the embedding model name must be non-empty without ':' or whitespace: " +
          JSON.stringify(model),
      );
    }
    if (!Number.isSafeInteger(dimensions) || dimensions < 0) {
      throw new RangeError(`the embedding dimension must be a non-negative integer: ${dimensions}`);
    }
    const name = new TextEncoder().encode(model);
    const seedBytes = new Uint8Array(17 + name.length + 1 + 8);
    seedBytes.set(new TextEncoder().encode("closedloop sh512\0"), 0);
    seedBytes.set(name, 17);
    new DataView(seedBytes.buffer).setBigUint64(18 + name.length, BigInt(dimensions), true);
    // SplitMix64: dimension i's signs are draws 8i .. 8i+7, bit j of the 512 in draw j / 64,
    // kept as 32-bit halves (low half first).
    let state = fnv1a(seedBytes);
    const signs = new Uint32Array(dimensions * HALVES);
    for (let k = 0; k < signs.length; k += 2) {
      state = (state + 0x9e3779b97f4a7c15n) & MASK64;
      let z = state;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
      z ^= z >> 31n;
      signs[k] = Number(z & MASK32);
      signs[k + 1] = Number(z >> 32n);
    }
    /** @private */
    this._signs = signs;
    /** The embedding model's name. */
    this.model = model;
    /** The embedding length this hasher takes. */
    this.dimensions = dimensions;
    Object.freeze(this);
  }

  /**
   * The fingerprint of `embedding` (any scale: only its direction matters), the value of
   * `closedloop.query.semantic_fingerprint`: `sh512:<model>:` and 128 lowercase hex digits.
   * Each value is rounded to float32 first. Throws a `RangeError` for another length than
   * the hasher's, a NaN or an infinity (also after rounding), or an all-zero vector.
   * @param {ArrayLike<number>} embedding an array, a `Float32Array` or a `Float64Array`
   * @returns {string}
   */
  fingerprint(embedding) {
    const n = this.dimensions;
    if (embedding === null || typeof embedding !== "object") {
      throw new TypeError("the embedding must be an array of numbers");
    }
    if (embedding.length !== n) {
      throw new RangeError(`the embedding has ${embedding.length} dimensions, the model ${n}`);
    }
    const values = new Float64Array(n);
    let nonZero = false;
    for (let i = 0; i < n; i++) {
      const x = embedding[i];
      if (typeof x !== "number") {
        throw new TypeError("the embedding must hold numbers");
      }
      const v = Math.fround(x);
      if (!Number.isFinite(v)) {
        throw new RangeError("the embedding is zero or not finite");
      }
      nonZero ||= v !== 0;
      values[i] = v;
    }
    if (!nonZero) {
      throw new RangeError("the embedding is zero or not finite");
    }
    // Plane j's dot product is 2·(sum where the entry is +1) − (sum of all), both summed
    // from 0 in dimension order.
    const positive = new Float64Array(BITS);
    let total = 0;
    const signs = this._signs;
    for (let i = 0; i < n; i++) {
      const x = values[i];
      total += x;
      const base = i * HALVES;
      for (let h = 0; h < HALVES; h++) {
        let half = signs[base + h];
        const offset = h * 32;
        while (half !== 0) {
          const low = half & -half;
          positive[offset + 31 - Math.clz32(low)] += x;
          half = (half ^ low) >>> 0;
        }
      }
    }
    const halves = new Uint32Array(HALVES);
    for (let j = 0; j < BITS; j++) {
      if (2 * positive[j] - total > 0) {
        halves[j >>> 5] |= 1 << (j & 31);
      }
    }
    let hex = "";
    for (let w = 0; w < HALVES; w += 2) {
      hex += halves[w + 1].toString(16).padStart(8, "0") + halves[w].toString(16).padStart(8, "0");
    }
    return `${SEMANTIC_FINGERPRINT_SCHEME}:${this.model}:${hex}`;
  }
}

/**
 * The model and the 32-bit halves of a fingerprint.
 * @param {string} value
 * @returns {{ model: string, halves: Uint32Array }}
 */
function parse(value) {
  const match = typeof value === "string" ? FINGERPRINT.exec(value) : null;
  if (match === null || match[1].includes(":")) {
    throw new TypeError(
      `not a semantic fingerprint (sh512:<model>:<128 hex digits>): ${JSON.stringify(value)}`,
    );
  }
  const digits = match[2];
  const halves = new Uint32Array(HALVES);
  for (let w = 0; w < HALVES; w += 2) {
    halves[w + 1] = parseInt(digits.slice(w * 8, w * 8 + 8), 16);
    halves[w] = parseInt(digits.slice(w * 8 + 8, w * 8 + 16), 16);
  }
  return { model: match[1], halves };
}

/**
 * The number of bits in which two `sh512` fingerprints differ; `undefined` when they come from
 * different models. Throws a `TypeError` for a value that is not a fingerprint.
 * @param {string} a
 * @param {string} b
 * @returns {number | undefined}
 */
export function semanticHamming(a, b) {
  const x = parse(a);
  const y = parse(b);
  if (x.model !== y.model) {
    return undefined;
  }
  let count = 0;
  for (let h = 0; h < HALVES; h++) {
    let v = (x.halves[h] ^ y.halves[h]) >>> 0;
    while (v !== 0) {
      v &= v - 1;
      count++;
    }
  }
  return count;
}

/**
 * The estimated cosine similarity of two fingerprinted embeddings, cos(π·h/512) for `h`
 * differing bits, in -1..1; `undefined` when the fingerprints come from different models
 * (they are never compared). Throws a `TypeError` for a value that is not a fingerprint.
 * @param {string} a
 * @param {string} b
 * @returns {number | undefined}
 */
export function semanticSimilarity(a, b) {
  const h = semanticHamming(a, b);
  return h === undefined ? undefined : Math.cos((Math.PI * h) / BITS);
}
