// The `mh64v3` query fingerprint, as closedloop-tracing computes it
// (crates/tracing/src/fingerprint.rs): the same normalisation, the same hashes, the same
// hex string, checked against clients/testdata/vectors.json.

/** The scheme name of the fingerprints this module writes. */
export const FINGERPRINT_SCHEME = "mh64v3";

/** One-byte MinHash slots over canonical words. */
const WORD_SLOTS = 32;
/** One-byte MinHash slots over character trigrams of the canonical words. */
const CHAR_SLOTS = 96;
const SLOTS = WORD_SLOTS + CHAR_SLOTS;

const MASK64 = (1n << 64n) - 1n;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

// The word lists are part of the scheme: they are copied from the Rust source verbatim, and
// changing them changes fingerprints (which needs a new scheme name there first).

/** Words that carry no topic and are dropped before shingling. */
// prettier-ignore
const STOPWORDS = new Set([
  "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
  "could", "did", "do", "doe", "does", "for", "from", "get", "got", "had", "has", "have", "he",
  "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "let", "me", "my",
  "need", "no", "not", "of", "on", "or", "our", "please", "she", "should", "so", "some", "tell",
  "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "u",
  "up", "us", "wa", "want", "was", "we", "were", "what", "when", "where", "which", "who", "why",
  "will", "with", "would", "you", "your",
]);

/**
 * Opposite actions and settings: side `s` of pair `i` is contrast mark `2 i + s`. Matched on
 * the words as written (lowercased) or a phrase's canonical word.
 * @type {[string[], string[]][]}
 */
// prettier-ignore
const CONTRASTS = [
  [["enable", "enables", "activate", "activates"], ["disable", "disables", "deactivate", "deactivates"]],
  [["add", "adds"], ["remove", "removes"]],
  [["import", "imports"], ["export", "exports"]],
  [["upload", "uploads"], ["download", "downloads"]],
  [["lock", "locks"], ["unlock", "unlocks"]],
  [["freeze", "freezes"], ["unfreeze", "unfreezes"]],
  [["block", "blocks"], ["unblock", "unblocks"]],
  [["mute", "mutes"], ["unmute", "unmutes"]],
  [["pin", "pins"], ["unpin", "unpins"]],
  [["archive", "archives"], ["unarchive", "unarchives"]],
  [["hide", "hides"], ["unhide", "unhides"]],
  [["hide", "hides"], ["show", "shows"]],
  [["follow", "follows"], ["unfollow", "unfollows"]],
  [["subscribe", "subscribes"], ["unsubscribe", "unsubscribes"]],
  [["install", "installs"], ["uninstall", "uninstalls"]],
  [["connect", "connects"], ["disconnect", "disconnects"]],
  [["link", "links"], ["unlink", "unlinks"]],
  [["pair", "pairs"], ["unpair", "unpairs"]],
  [["assign", "assigns"], ["unassign", "unassigns"]],
  [["share", "shares"], ["unshare", "unshares"]],
  [["publish", "publishes"], ["unpublish", "unpublishes"]],
  [["approve", "approves"], ["reject", "rejects"]],
  [["accept", "accepts"], ["reject", "rejects"]],
  [["accept", "accepts"], ["decline", "declines"]],
  [["allow", "allows"], ["block", "blocks"]],
  [["upgrade", "upgrades"], ["downgrade", "downgrades"]],
  [["increase", "increases"], ["decrease", "decreases"]],
  [["start", "starts"], ["stop", "stops"]],
  [["pause", "pauses"], ["resume", "resumes"]],
  [["send", "sends"], ["receive", "receives"]],
  [["login"], ["logout"]],
  [["encrypt", "encrypts"], ["decrypt", "decrypts"]],
  [["join", "joins"], ["leave", "leaves"]],
  [["include", "includes"], ["exclude", "excludes"]],
  [["undo"], ["redo"]],
  [["public"], ["private"]],
  [["incoming"], ["outgoing"]],
  [["inbound"], ["outbound"]],
  [["maximum"], ["minimum"]],
  [["expand", "expands"], ["collapse", "collapses"]],
];

/** Word sequences read as one canonical word (before stopwords are dropped). */
/** @type {[string[], string][]} */
const PHRASES = [
  [["turn", "on"], "enable"],
  [["switch", "on"], "enable"],
  [["turn", "off"], "disable"],
  [["switch", "off"], "disable"],
  [["set", "up"], "configure"],
  [["log", "in"], "login"],
  [["sign", "in"], "login"],
  [["log", "on"], "login"],
  [["log", "out"], "logout"],
  [["sign", "out"], "logout"],
  [["sign", "up"], "signup"],
  [["get", "back"], "restore"],
  [["send", "back"], "return"],
  [["money", "back"], "refund"],
  [["two", "factor"], "2fa"],
  [["two", "step"], "2fa"],
  [["multi", "factor"], "2fa"],
  [["single", "sign", "on"], "sso"],
  [["time", "off"], "vacation"],
  [["annual", "leave"], "vacation"],
  [["customer", "support"], "support"],
  [["customer", "service"], "support"],
  [["help", "desk"], "support"],
  [["not", "working"], "broken"],
  [["doesnt", "work"], "broken"],
  [["isnt", "working"], "broken"],
  [["wont", "work"], "broken"],
  [["stopped", "working"], "broken"],
  [["wi", "fi"], "wifi"],
  [["e", "mail"], "email"],
];

/** Words (or their stems) read as a canonical synonym. */
const SYNONYMS = new Map([
  ["update", "change"],
  ["modify", "change"],
  ["edit", "change"],
  ["alter", "change"],
  ["reset", "change"],
  ["terminate", "cancel"],
  ["discontinue", "cancel"],
  ["end", "cancel"],
  ["remove", "delete"],
  ["erase", "delete"],
  ["invite", "add"],
  ["generate", "create"],
  ["make", "create"],
  ["member", "user"],
  ["teammate", "user"],
  ["colleague", "user"],
  ["person", "user"],
  ["someone", "user"],
  ["people", "user"],
  ["reject", "decline"],
  ["refuse", "decline"],
  ["deny", "decline"],
  ["shipping", "ship"],
  ["shipment", "ship"],
  ["delivery", "ship"],
  ["deliver", "ship"],
  ["dispatch", "ship"],
  ["package", "order"],
  ["parcel", "order"],
  ["purchase", "order"],
  ["bought", "order"],
  ["buy", "order"],
  ["receive", "arrive"],
  ["setup", "configure"],
  ["download", "export"],
  ["recover", "restore"],
  ["undelete", "restore"],
  ["retrieve", "restore"],
  ["reserve", "book"],
  ["wireless", "wifi"],
  ["computer", "laptop"],
  ["pc", "laptop"],
  ["notebook", "laptop"],
  ["sluggish", "slow"],
  ["laggy", "slow"],
  ["pto", "vacation"],
  ["holiday", "vacation"],
  ["mobile", "phone"],
  ["smartphone", "phone"],
  ["cellphone", "phone"],
  ["contest", "dispute"],
  ["product", "item"],
  ["article", "item"],
  ["payment", "pay"],
  ["paid", "pay"],
  ["price", "cost"],
  ["pricing", "cost"],
  ["fee", "cost"],
  ["signin", "login"],
  ["logon", "login"],
  ["issue", "problem"],
  ["trouble", "problem"],
  ["confirmation", "verification"],
  ["confirm", "verification"],
  ["verify", "verification"],
  ["activation", "verification"],
  ["lose", "lost"],
  ["missing", "lost"],
  ["misplace", "lost"],
  ["activate", "enable"],
  ["deactivate", "disable"],
  ["mfa", "2fa"],
  ["2sv", "2fa"],
  ["helpdesk", "support"],
  ["reimburse", "refund"],
  ["locate", "find"],
  ["quota", "limit"],
  ["token", "key"],
  ["mail", "email"],
  ["passcode", "password"],
  ["organisation", "organization"],
  ["org", "organization"],
]);

/** @param {bigint} z */
function mix(z) {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Per-slot seeds, fixed forever for the `mh64v2` and `mh64v3` schemes. */
const SEEDS = (() => {
  const seeds = new Array(SLOTS);
  let state = 0x6d68363476320000n; // "mh64v2"
  for (let i = 0; i < SLOTS; i++) {
    state = (state + 0x9e3779b97f4a7c15n) & MASK64;
    seeds[i] = mix(state);
  }
  return seeds;
})();

const encoder = new TextEncoder();

/**
 * FNV-1a over the concatenation of `parts`.
 * @param {Uint8Array[]} parts
 */
function fnv1a(parts) {
  let h = FNV_OFFSET;
  for (const part of parts) {
    for (const byte of part) {
      h = ((h ^ BigInt(byte)) * FNV_PRIME) & MASK64;
    }
  }
  return h;
}

// Rust's `char::is_alphanumeric`: Alphabetic or a numeric general category (Nd, Nl, No).
const ALPHANUMERIC = /^[\p{Alphabetic}\p{N}]$/u;

/**
 * A light suffix stripper: plural and verb endings only (Rust's `stem`).
 * @param {string} word
 */
function stem(word) {
  const n = [...word].length;
  /** @type {(suffix: string, minLen: number, replacement: string) => string | undefined} */
  const strip = (suffix, minLen, replacement) =>
    n >= minLen && word.endsWith(suffix)
      ? word.slice(0, word.length - suffix.length) + replacement
      : undefined;
  const es = strip("es", 5, "");
  const s = strip("s", 4, "");
  return (
    strip("ies", 5, "y") ??
    strip("ing", 6, "") ??
    strip("ed", 5, "") ??
    (es !== undefined && /(?:[sxz]|ch|sh)$/.test(es) ? es : undefined) ??
    (s !== undefined && !/[sui]$/.test(s) ? s : undefined) ??
    word
  );
}

/**
 * `mh64v3` normalisation: lowercases, strips punctuation, reads phrases and synonyms as one
 * canonical word, stems and drops stopwords.
 * @param {string} query
 * @returns {string[]}
 */
/**
 * The lowercased words of a query, without punctuation or apostrophes.
 * @param {string} query
 * @returns {string[]}
 */
function rawWords(query) {
  /** @type {string[]} */
  const raw = [];
  let current = "";
  for (const c of query.toLowerCase()) {
    if (c === "'" || ALPHANUMERIC.test(c)) {
      current += c;
    } else {
      raw.push(current);
      current = "";
    }
  }
  raw.push(current);
  return raw.map((w) => w.replaceAll("'", "")).filter((w) => w !== "");
}

/**
 * The words of a query after phrases are read: `{ phrase: true, word }` for a phrase's
 * canonical word, `{ phrase: false, word }` for a word as written.
 * @param {string} query
 * @returns {{ phrase: boolean, word: string }[]}
 */
function phraseWords(query) {
  const tokens = rawWords(query);
  /** @type {{ phrase: boolean, word: string }[]} */
  const words = [];
  let i = 0;
  outer: while (i < tokens.length) {
    for (const [phrase, canonical] of PHRASES) {
      if (tokens.length - i >= phrase.length && phrase.every((p, k) => tokens[i + k] === p)) {
        words.push({ phrase: true, word: canonical });
        i += phrase.length;
        continue outer;
      }
    }
    words.push({ phrase: false, word: tokens[i] });
    i += 1;
  }
  return words;
}

/**
 * @param {string} query
 * @returns {string[]}
 */
function canonicalWords(query) {
  /** @type {string[]} */
  const words = [];
  for (const { phrase, word } of phraseWords(query)) {
    if (phrase) {
      words.push(word);
      continue;
    }
    let canonical = SYNONYMS.get(word);
    if (canonical === undefined) {
      const stemmed = stem(word);
      canonical = SYNONYMS.get(stemmed) ?? stemmed;
    }
    if (!STOPWORDS.has(canonical)) {
      words.push(canonical);
    }
  }
  return words;
}

/**
 * The ascending contrast marks of a query.
 * @param {string} query
 * @returns {number[]}
 */
function contrastMarks(query) {
  const marks = new Set();
  for (const { word } of phraseWords(query)) {
    CONTRASTS.forEach(([first, second], pair) => {
      if (first.includes(word)) marks.add(2 * pair);
      if (second.includes(word)) marks.add(2 * pair + 1);
    });
  }
  return [...marks].sort((a, b) => a - b);
}

/**
 * The UTF-8 bytes of each character trigram of `^word$`.
 * @param {string} word
 * @returns {Uint8Array[]}
 */
function trigrams(word) {
  const padded = ["^", ...word, "$"];
  const out = [];
  for (let i = 0; i + 3 <= padded.length; i++) {
    out.push(encoder.encode(padded[i] + padded[i + 1] + padded[i + 2]));
  }
  return out;
}

const WORD_PREFIX = encoder.encode("w");
const TRIGRAM_PREFIX = encoder.encode("c");

/**
 * The `mh64v3` fingerprint of a query, as the value of `closedloop.query.fingerprint`:
 * `mh64v3:`, 260 lowercase hex digits and two per contrast mark (a side of a pair of opposite
 * actions such as "enable" / "disable" that the query uses), or `mh64v3:` alone when no words
 * are left after normalisation. The text cannot be read back from it, but it is unkeyed (and the
 * marks say which words of the public list of opposite actions the query uses): treat it like a
 * hash of the query.
 *
 * @param {string} query
 * @returns {string}
 */
export function queryFingerprint(query) {
  const words = canonicalWords(query);
  if (words.length === 0) {
    return `${FINGERPRINT_SCHEME}:`;
  }
  const wordHashes = new Set(words.map((word) => fnv1a([WORD_PREFIX, encoder.encode(word)])));
  const trigramHashes = new Set();
  for (const word of words) {
    for (const trigram of trigrams(word)) {
      trigramHashes.add(fnv1a([TRIGRAM_PREFIX, trigram]));
    }
  }
  const minima = new Array(SLOTS).fill(MASK64);
  /** @type {(hashes: Set<bigint>, from: number, to: number) => void} */
  const absorb = (hashes, from, to) => {
    for (const hash of hashes) {
      for (let slot = from; slot < to; slot++) {
        const h = mix(hash ^ SEEDS[slot]);
        if (h < minima[slot]) {
          minima[slot] = h;
        }
      }
    }
  };
  absorb(wordHashes, 0, WORD_SLOTS);
  absorb(trigramHashes, WORD_SLOTS, SLOTS);
  const byte = (/** @type {number} */ n) => n.toString(16).padStart(2, "0");
  let hex = byte(Math.min(wordHashes.size, 255)) + byte(Math.min(trigramHashes.size, 255));
  for (const m of minima) {
    hex += byte(Number(m >> 56n));
  }
  for (const mark of contrastMarks(query)) {
    hex += byte(mark);
  }
  return `${FINGERPRINT_SCHEME}:${hex}`;
}
