//! Privacy-preserving query fingerprints for rephrase detection.
//!
//! Three schemes exist. `mh64v3` (written by [`fingerprint`]) canonicalises common help-desk
//! synonyms and phrasal verbs before hashing and carries the sizes of its feature sets, so the
//! receiver can estimate how much of the shorter query the longer one contains: a query that
//! was shortened or expanded stays close, while two questions on the same topic that differ in
//! their key word drift apart. It also carries which words of a fixed list of opposite actions
//! and settings the query uses ("enable" / "disable", "import" / "export"), so two queries that
//! differ by such a swap are known to ask different things ([`Fingerprint::contrasts`]): word
//! overlap and sentence embeddings both rate them as near-duplicates.
//!
//! `mh64v2` is `mh64v3` without that list; the two compare with each other on their shared
//! MinHash slots, so fingerprints written by older releases keep working. `mh64` (the first
//! scheme) is still parsed and compared with itself only.

use std::fmt;
use std::str::FromStr;

/// Number of MinHash slots computed over word shingles (`mh64`).
const WORD_SLOTS: usize = 32;
/// Number of MinHash slots computed over character trigrams (`mh64`).
const CHAR_SLOTS: usize = 32;
/// Total number of slots in an `mh64` fingerprint.
const SLOTS: usize = WORD_SLOTS + CHAR_SLOTS;
/// The scheme name of the first fingerprint scheme.
const SCHEME_MH64: &str = "mh64";

/// Number of one-byte MinHash slots over canonical words (`mh64v2`).
const V2_WORD_SLOTS: usize = 32;
/// Number of one-byte MinHash slots over character trigrams of the canonical words (`mh64v2`).
const V2_CHAR_SLOTS: usize = 96;
/// Total number of slots in an `mh64v2` fingerprint.
const V2_SLOTS: usize = V2_WORD_SLOTS + V2_CHAR_SLOTS;
/// Hex digits of an `mh64v2` signature: two size bytes, then one byte per slot.
const V2_HEX_LEN: usize = (2 + V2_SLOTS) * 2;
/// The scheme name of `mh64v3` without its contrast marks.
const SCHEME_MH64V2: &str = "mh64v2";
/// The scheme name written by [`fingerprint`].
const SCHEME_MH64V3: &str = "mh64v3";

/// A similarity at or above which two consecutive queries are likely the same question asked
/// differently (for `mh64v3` fingerprints, which [`fingerprint`] writes, and `mh64v2` ones).
///
/// Chosen on labelled pairs of consecutive help-desk queries (the receiver's
/// `rephrase_pairs.jsonl` fixture and this crate's tests); see the receiver's rephrase
/// benchmark for precision and recall. A receiver may tune it on its own data.
pub const SUGGESTED_REPHRASE_THRESHOLD: f64 = 0.75;

/// Words that carry no topic and are dropped before shingling.
const STOPWORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "doe", "does", "for", "from", "get", "got", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "let", "me", "my",
    "need", "no", "not", "of", "on", "or", "our", "please", "she", "should", "so", "some", "tell",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "u",
    "up", "us", "wa", "want", "was", "we", "were", "what", "when", "where", "which", "who", "why",
    "will", "with", "would", "you", "your",
];

/// Word sequences read as one canonical word by `mh64v2` (before stopwords are dropped, so
/// "turn on" and "turn off" stay apart).
const PHRASES: &[(&[&str], &str)] = &[
    (&["turn", "on"], "enable"),
    (&["switch", "on"], "enable"),
    (&["turn", "off"], "disable"),
    (&["switch", "off"], "disable"),
    (&["set", "up"], "configure"),
    (&["log", "in"], "login"),
    (&["sign", "in"], "login"),
    (&["log", "on"], "login"),
    (&["log", "out"], "logout"),
    (&["sign", "out"], "logout"),
    (&["sign", "up"], "signup"),
    (&["get", "back"], "restore"),
    (&["send", "back"], "return"),
    (&["money", "back"], "refund"),
    (&["two", "factor"], "2fa"),
    (&["two", "step"], "2fa"),
    (&["multi", "factor"], "2fa"),
    (&["single", "sign", "on"], "sso"),
    (&["time", "off"], "vacation"),
    (&["annual", "leave"], "vacation"),
    (&["customer", "support"], "support"),
    (&["customer", "service"], "support"),
    (&["help", "desk"], "support"),
    (&["not", "working"], "broken"),
    (&["doesnt", "work"], "broken"),
    (&["isnt", "working"], "broken"),
    (&["wont", "work"], "broken"),
    (&["stopped", "working"], "broken"),
    (&["wi", "fi"], "wifi"),
    (&["e", "mail"], "email"),
];

/// Words (or their stems) read as a canonical synonym by `mh64v2` and `mh64v3`: common
/// help-desk, account, billing, shipping and IT vocabulary. The pairs are part of the scheme:
/// changing them changes fingerprints, so it needs a new scheme name.
const SYNONYMS: &[(&str, &str)] = &[
    ("update", "change"),
    ("modify", "change"),
    ("edit", "change"),
    ("alter", "change"),
    ("reset", "change"),
    ("terminate", "cancel"),
    ("discontinue", "cancel"),
    ("end", "cancel"),
    ("remove", "delete"),
    ("erase", "delete"),
    ("invite", "add"),
    ("generate", "create"),
    ("make", "create"),
    ("member", "user"),
    ("teammate", "user"),
    ("colleague", "user"),
    ("person", "user"),
    ("someone", "user"),
    ("people", "user"),
    ("reject", "decline"),
    ("refuse", "decline"),
    ("deny", "decline"),
    ("shipping", "ship"),
    ("shipment", "ship"),
    ("delivery", "ship"),
    ("deliver", "ship"),
    ("dispatch", "ship"),
    ("package", "order"),
    ("parcel", "order"),
    ("purchase", "order"),
    ("bought", "order"),
    ("buy", "order"),
    ("receive", "arrive"),
    ("setup", "configure"),
    ("download", "export"),
    ("recover", "restore"),
    ("undelete", "restore"),
    ("retrieve", "restore"),
    ("reserve", "book"),
    ("wireless", "wifi"),
    ("computer", "laptop"),
    ("pc", "laptop"),
    ("notebook", "laptop"),
    ("sluggish", "slow"),
    ("laggy", "slow"),
    ("pto", "vacation"),
    ("holiday", "vacation"),
    ("mobile", "phone"),
    ("smartphone", "phone"),
    ("cellphone", "phone"),
    ("contest", "dispute"),
    ("product", "item"),
    ("article", "item"),
    ("payment", "pay"),
    ("paid", "pay"),
    ("price", "cost"),
    ("pricing", "cost"),
    ("fee", "cost"),
    ("signin", "login"),
    ("logon", "login"),
    ("issue", "problem"),
    ("trouble", "problem"),
    ("confirmation", "verification"),
    ("confirm", "verification"),
    ("verify", "verification"),
    ("activation", "verification"),
    ("lose", "lost"),
    ("missing", "lost"),
    ("misplace", "lost"),
    ("activate", "enable"),
    ("deactivate", "disable"),
    ("mfa", "2fa"),
    ("2sv", "2fa"),
    ("helpdesk", "support"),
    ("reimburse", "refund"),
    ("locate", "find"),
    ("quota", "limit"),
    ("token", "key"),
    ("mail", "email"),
    ("passcode", "password"),
    ("organisation", "organization"),
    ("org", "organization"),
];

/// Opposite actions and settings: two queries that differ by swapping one side of a pair for
/// the other ("turn on 2FA" / "turn off 2FA", "add a user" / "remove a user") ask different
/// things however much else they share. Each side lists the words as written (lowercased, or a
/// phrase's canonical word such as "enable" for "turn on"), in the base and third-person forms
/// only: a past participle usually names a state whose remedy is the other side ("account
/// locked" / "unlock my account" is one question). Side `s` of pair `i` is contrast mark
/// `2 i + s` of `mh64v3`; the list is part of the scheme and only ever grows at its end.
const CONTRASTS: &[(&[&str], &[&str])] = &[
    (
        &["enable", "enables", "activate", "activates"],
        &["disable", "disables", "deactivate", "deactivates"],
    ),
    (&["add", "adds"], &["remove", "removes"]),
    (&["import", "imports"], &["export", "exports"]),
    (&["upload", "uploads"], &["download", "downloads"]),
    (&["lock", "locks"], &["unlock", "unlocks"]),
    (&["freeze", "freezes"], &["unfreeze", "unfreezes"]),
    (&["block", "blocks"], &["unblock", "unblocks"]),
    (&["mute", "mutes"], &["unmute", "unmutes"]),
    (&["pin", "pins"], &["unpin", "unpins"]),
    (&["archive", "archives"], &["unarchive", "unarchives"]),
    (&["hide", "hides"], &["unhide", "unhides"]),
    (&["hide", "hides"], &["show", "shows"]),
    (&["follow", "follows"], &["unfollow", "unfollows"]),
    (
        &["subscribe", "subscribes"],
        &["unsubscribe", "unsubscribes"],
    ),
    (&["install", "installs"], &["uninstall", "uninstalls"]),
    (&["connect", "connects"], &["disconnect", "disconnects"]),
    (&["link", "links"], &["unlink", "unlinks"]),
    (&["pair", "pairs"], &["unpair", "unpairs"]),
    (&["assign", "assigns"], &["unassign", "unassigns"]),
    (&["share", "shares"], &["unshare", "unshares"]),
    (&["publish", "publishes"], &["unpublish", "unpublishes"]),
    (&["approve", "approves"], &["reject", "rejects"]),
    (&["accept", "accepts"], &["reject", "rejects"]),
    (&["accept", "accepts"], &["decline", "declines"]),
    (&["allow", "allows"], &["block", "blocks"]),
    (&["upgrade", "upgrades"], &["downgrade", "downgrades"]),
    (&["increase", "increases"], &["decrease", "decreases"]),
    (&["start", "starts"], &["stop", "stops"]),
    (&["pause", "pauses"], &["resume", "resumes"]),
    (&["send", "sends"], &["receive", "receives"]),
    (&["login"], &["logout"]),
    (&["encrypt", "encrypts"], &["decrypt", "decrypts"]),
    (&["join", "joins"], &["leave", "leaves"]),
    (&["include", "includes"], &["exclude", "excludes"]),
    (&["undo"], &["redo"]),
    (&["public"], &["private"]),
    (&["incoming"], &["outgoing"]),
    (&["inbound"], &["outbound"]),
    (&["maximum"], &["minimum"]),
    (&["expand", "expands"], &["collapse", "collapses"]),
];

/// A MinHash fingerprint of a normalised query, as carried in `closedloop.query.fingerprint`.
///
/// [`fingerprint`] writes the `mh64v3` scheme: the text is lowercased, stripped of
/// punctuation, common phrasal verbs and synonyms are mapped to one canonical word, words are
/// lightly stemmed and cleared of stopwords. 32 one-byte slots are MinHash minima over the
/// canonical words, 96 over their character trigrams (so misspelt rephrasings stay close);
/// two leading bytes carry how many distinct words and trigrams there were (capped at 255),
/// which lets [`similarity`](Fingerprint::similarity) estimate containment rather than plain
/// overlap. Then come the contrast marks: one byte for each side of a pair of opposite actions
/// or settings (such as "enable" / "disable") that the query's words include, ascending. The
/// attribute value is `mh64v3:` followed by 260 lowercase hex digits and two more per mark; a
/// query with no words left after normalisation has an empty signature (`mh64v3:`). `mh64v2`
/// values (the same without marks) are still parsed and compared with `mh64v3` ones, and the
/// older `mh64` scheme (`mh64:` and 256 hex digits) with itself.
///
/// The fingerprint does not contain the text, but it is unkeyed: someone who can guess candidate
/// queries can test them against it, the sizes reveal roughly how long the query was, and the
/// marks say which words of a short public list of action words (enable, export, unlock, …)
/// it uses. Treat it like a hash of the query, not like noise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    repr: Repr,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// `mh64`: 16-bit minima, word slots first; empty when the query had no words.
    Mh64 { slots: Vec<u16> },
    /// `mh64v2` and `mh64v3`: the distinct word and trigram counts, and 8-bit minima, word
    /// slots first; `slots` is empty when the query had no words. `contrasts` holds the
    /// ascending contrast marks of `mh64v3`, `None` for `mh64v2`.
    Mh64v2 {
        words: u8,
        trigrams: u8,
        slots: Vec<u8>,
        contrasts: Option<Vec<u8>>,
    },
}

/// Computes the (`mh64v3`) fingerprint of a query.
///
/// # Examples
///
/// ```
/// use closedloop_tracing::fingerprint;
///
/// let a = fingerprint("How do I reset my password?");
/// let b = fingerprint("password reset steps");
/// let c = fingerprint("Which plans include SSO?");
/// assert!(a.similarity(&b).unwrap() > a.similarity(&c).unwrap());
/// ```
pub fn fingerprint(query: &str) -> Fingerprint {
    let words = canonical_words(query);
    let empty = Fingerprint {
        repr: Repr::Mh64v2 {
            words: 0,
            trigrams: 0,
            slots: Vec::new(),
            contrasts: Some(Vec::new()),
        },
    };
    if words.is_empty() {
        return empty;
    }
    let mut minima = [u64::MAX; V2_SLOTS];
    let mut absorb = |base: u64, range: std::ops::Range<usize>| {
        for slot in range {
            let h = mix(base ^ V2_SEEDS[slot]);
            if h < minima[slot] {
                minima[slot] = h;
            }
        }
    };
    let mut word_hashes: Vec<u64> = words
        .iter()
        .map(|word| fnv1a(&[b"w", word.as_bytes()]))
        .collect();
    word_hashes.sort_unstable();
    word_hashes.dedup();
    for &hash in &word_hashes {
        absorb(hash, 0..V2_WORD_SLOTS);
    }
    let mut trigram_hashes = Vec::new();
    for word in &words {
        trigrams(word, |trigram| {
            trigram_hashes.push(fnv1a(&[b"c", trigram]));
        });
    }
    trigram_hashes.sort_unstable();
    trigram_hashes.dedup();
    for &hash in &trigram_hashes {
        absorb(hash, V2_WORD_SLOTS..V2_SLOTS);
    }
    Fingerprint {
        repr: Repr::Mh64v2 {
            words: word_hashes.len().min(255) as u8,
            trigrams: trigram_hashes.len().min(255) as u8,
            slots: minima.iter().map(|m| (m >> 56) as u8).collect(),
            contrasts: Some(contrast_marks(query)),
        },
    }
}

/// Whether two query texts differ by a swap of opposite actions or settings ("turn on 2FA" /
/// "turn off 2FA"): one uses a side of a contrast pair that the other does not, and the other
/// uses the opposite side that the first does not. Computed on the same words as the contrast
/// marks of an `mh64v3` fingerprint, so it agrees with [`Fingerprint::contrasts`].
///
/// # Examples
///
/// ```
/// use closedloop_tracing::queries_contrast;
///
/// assert!(queries_contrast("How do I turn on 2FA?", "how to disable two-factor"));
/// assert!(!queries_contrast("my account is locked", "How do I unlock my account?"));
/// ```
pub fn queries_contrast(a: &str, b: &str) -> bool {
    marks_contrast(&contrast_marks(a), &contrast_marks(b))
}

/// The ascending contrast marks of a query: `2 i + s` for each side `s` of pair `i` of
/// [`CONTRASTS`] that one of its words (or a phrase's canonical word) is on.
fn contrast_marks(query: &str) -> Vec<u8> {
    let mut marks = Vec::new();
    for word in phrase_words(&raw_words(query)) {
        let surface = match &word {
            Word::Phrase(canonical) => canonical,
            Word::Raw(raw) => raw.as_str(),
        };
        for (pair, (first, second)) in CONTRASTS.iter().enumerate() {
            for (side, words) in [first, second].into_iter().enumerate() {
                if words.contains(&surface) {
                    marks.push((2 * pair + side) as u8);
                }
            }
        }
    }
    marks.sort_unstable();
    marks.dedup();
    marks
}

/// Whether a side is in one set of marks but not the other while its opposite is in the other
/// but not the first.
fn marks_contrast(a: &[u8], b: &[u8]) -> bool {
    let has = |marks: &[u8], mark: u8| marks.binary_search(&mark).is_ok();
    a.iter().any(|&mark| {
        let opposite = mark ^ 1;
        !has(a, opposite) && has(b, opposite) && !has(b, mark)
    })
}

/// How similar two query texts are, computed exactly on the features an `mh64v3`
/// fingerprint estimates (so the same thresholds apply): the weighted containment of the
/// shorter query's character trigrams and canonical words in the other. For a receiver that
/// has both texts (query capture on). `None` when either query has no words.
///
/// # Examples
///
/// ```
/// use closedloop_tracing::query_similarity;
///
/// let same = query_similarity("How do I cancel my subscription?", "cancel subscription");
/// let other = query_similarity("How do I cancel my subscription?", "pause my subscription");
/// assert!(same.unwrap() > other.unwrap());
/// ```
pub fn query_similarity(a: &str, b: &str) -> Option<f64> {
    use std::collections::HashSet;
    let features = |query: &str| {
        let words: HashSet<String> = canonical_words(query).into_iter().collect();
        let mut trigram_set: HashSet<Vec<u8>> = HashSet::new();
        for word in &words {
            trigrams(word, |trigram| {
                trigram_set.insert(trigram.to_vec());
            });
        }
        (words, trigram_set)
    };
    fn contained<T: std::hash::Hash + Eq>(a: &HashSet<T>, b: &HashSet<T>) -> f64 {
        let shared = a.intersection(b).count() as f64;
        shared / a.len().min(b.len()).max(1) as f64
    }
    let (words_a, trigrams_a) = features(a);
    let (words_b, trigrams_b) = features(b);
    if words_a.is_empty() || words_b.is_empty() {
        return None;
    }
    Some(
        WORD_WEIGHT * contained(&words_a, &words_b)
            + (1.0 - WORD_WEIGHT) * contained(&trigrams_a, &trigrams_b),
    )
}

/// Calls `f` with the UTF-8 bytes of each character trigram of `^word$`.
fn trigrams(word: &str, mut f: impl FnMut(&[u8])) {
    let padded: Vec<char> = std::iter::once('^')
        .chain(word.chars())
        .chain(std::iter::once('$'))
        .collect();
    let mut buf = [0u8; 12];
    for tri in padded.windows(3) {
        let mut len = 0;
        for c in tri {
            len += c.encode_utf8(&mut buf[len..]).len();
        }
        f(&buf[..len]);
    }
}

/// The `mh64` fingerprint of a query (the first scheme), kept for the compatibility tests.
#[cfg(test)]
fn fingerprint_mh64(query: &str) -> Fingerprint {
    let words = normalise(query);
    if words.is_empty() {
        return Fingerprint {
            repr: Repr::Mh64 { slots: Vec::new() },
        };
    }
    let mut minima = [u64::MAX; SLOTS];

    let mut absorb = |base: u64, range: std::ops::Range<usize>| {
        for slot in range {
            let h = mix(base ^ SEEDS[slot]);
            if h < minima[slot] {
                minima[slot] = h;
            }
        }
    };

    for (i, word) in words.iter().enumerate() {
        absorb(fnv1a(&[b"w", word.as_bytes()]), 0..WORD_SLOTS);
        if let Some(next) = words.get(i + 1) {
            absorb(
                fnv1a(&[b"b", word.as_bytes(), b" ", next.as_bytes()]),
                0..WORD_SLOTS,
            );
        }
        trigrams(word, |trigram| {
            absorb(fnv1a(&[b"c", trigram]), WORD_SLOTS..SLOTS);
        });
    }

    Fingerprint {
        repr: Repr::Mh64 {
            slots: minima.iter().map(|m| (m >> 48) as u16).collect(),
        },
    }
}

/// The Jaccard similarity estimated from one-byte MinHash slots: two different minima share
/// their top byte with probability 1/256, which is corrected for.
fn b_bit_jaccard(a: &[u8], b: &[u8]) -> f64 {
    const CHANCE: f64 = 1.0 / 256.0;
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64;
    let matches = same / a.len().max(1) as f64;
    ((matches - CHANCE) / (1.0 - CHANCE)).clamp(0.0, 1.0)
}

/// How much of the smaller set the larger one contains, from their Jaccard similarity and
/// sizes: |A ∩ B| = J (|A| + |B|) / (1 + J).
fn containment(jaccard: f64, a: u8, b: u8) -> f64 {
    let (a, b) = (f64::from(a.max(1)), f64::from(b.max(1)));
    let shared = jaccard * (a + b) / (1.0 + jaccard);
    (shared / a.min(b)).clamp(0.0, 1.0)
}

impl Fingerprint {
    /// The scheme of this fingerprint, the part of the attribute value before the colon.
    pub fn scheme(&self) -> &'static str {
        match self.repr {
            Repr::Mh64 { .. } => SCHEME_MH64,
            Repr::Mh64v2 {
                contrasts: None, ..
            } => SCHEME_MH64V2,
            Repr::Mh64v2 {
                contrasts: Some(_), ..
            } => SCHEME_MH64V3,
        }
    }

    /// Whether the two queries differ by a swap of opposite actions or settings ("turn on
    /// 2FA" / "turn off 2FA"), as [`queries_contrast`] says of their texts. Always false unless
    /// both fingerprints are `mh64v3` (only it carries the marks).
    pub fn contrasts(&self, other: &Fingerprint) -> bool {
        match (&self.repr, &other.repr) {
            (
                Repr::Mh64v2 {
                    contrasts: Some(a), ..
                },
                Repr::Mh64v2 {
                    contrasts: Some(b), ..
                },
            ) => marks_contrast(a, b),
            _ => false,
        }
    }

    /// Whether the query had no words left after normalisation.
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Mh64 { slots } => slots.is_empty(),
            Repr::Mh64v2 { slots, .. } => slots.is_empty(),
        }
    }

    /// The locality-sensitive band keys of the query's word MinHash: its 32 word slots in
    /// 8 bands of 4, each band hashed with its index and the scheme. Two queries share at
    /// least one key with probability 1 − (1 − J⁴)⁸ for a word Jaccard similarity J (0.41 at
    /// J = 0.5, 0.87 at 0.7, 0.06 at 0.3), so shared keys find near neighbours without
    /// comparing every pair. Empty for a query with no words.
    pub fn bands(&self) -> Vec<u64> {
        const BANDS: usize = 8;
        const ROWS: usize = 4;
        let word_slots: Vec<u16> = match &self.repr {
            Repr::Mh64 { slots } => slots.iter().take(WORD_SLOTS).copied().collect(),
            Repr::Mh64v2 { slots, .. } => slots
                .iter()
                .take(V2_WORD_SLOTS)
                .map(|&slot| u16::from(slot))
                .collect(),
        };
        if word_slots.len() < BANDS * ROWS {
            return Vec::new();
        }
        // `mh64v3` shares its MinHash slots with `mh64v2`, and so its band keys.
        let scheme = match self.scheme() {
            SCHEME_MH64V3 => SCHEME_MH64V2,
            scheme => scheme,
        };
        (0..BANDS)
            .map(|band| {
                let mut key = String::with_capacity(32);
                key.push_str(scheme);
                key.push(':');
                key.push(char::from(b'0' + band as u8));
                for slot in &word_slots[band * ROWS..(band + 1) * ROWS] {
                    key.push(':');
                    key.push_str(&slot.to_string());
                }
                fnv1a(&[key.as_bytes()])
            })
            .collect()
    }

    /// Estimates how similar the two queries are, from 0.0 (unrelated) to 1.0 (the same
    /// canonical words).
    ///
    /// For `mh64v2`, a weighted mean of two containment estimates (how much of the shorter
    /// query's character trigrams, weighted 0.8, and of its words, weighted 0.2, the other
    /// query has). For `mh64`, the mean of the
    /// word-shingle and the character-trigram Jaccard estimates. Returns `None` when either
    /// query had no words, so an empty query is never reported as a rephrasing, and when one
    /// fingerprint is `mh64` and the other is not (`mh64v2` and `mh64v3` compare with each
    /// other). The similarity ignores the contrast marks: see [`Fingerprint::contrasts`].
    pub fn similarity(&self, other: &Fingerprint) -> Option<f64> {
        if self.is_empty() || other.is_empty() {
            return None;
        }
        match (&self.repr, &other.repr) {
            (Repr::Mh64 { slots: a }, Repr::Mh64 { slots: b }) => {
                let matches = |range: std::ops::Range<usize>| {
                    let n = range.len() as f64;
                    let same = range.filter(|&i| a[i] == b[i]).count() as f64;
                    same / n
                };
                Some((matches(0..WORD_SLOTS) + matches(WORD_SLOTS..SLOTS)) / 2.0)
            }
            (
                Repr::Mh64v2 {
                    words: wa,
                    trigrams: ta,
                    slots: a,
                    ..
                },
                Repr::Mh64v2 {
                    words: wb,
                    trigrams: tb,
                    slots: b,
                    ..
                },
            ) => {
                let words = b_bit_jaccard(&a[..V2_WORD_SLOTS], &b[..V2_WORD_SLOTS]);
                let chars = b_bit_jaccard(&a[V2_WORD_SLOTS..], &b[V2_WORD_SLOTS..]);
                Some(
                    (WORD_WEIGHT * containment(words, *wa, *wb)
                        + (1.0 - WORD_WEIGHT) * containment(chars, *ta, *tb))
                    .clamp(0.0, 1.0),
                )
            }
            _ => None,
        }
    }
}

/// The weight of the word estimate in an `mh64v2` / `mh64v3` similarity (the rest is the
/// trigram one).
const WORD_WEIGHT: f64 = 0.2;

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Mh64 { slots } => {
                f.write_str(SCHEME_MH64)?;
                f.write_str(":")?;
                for slot in slots {
                    write!(f, "{slot:04x}")?;
                }
            }
            Repr::Mh64v2 {
                words,
                trigrams,
                slots,
                contrasts,
            } => {
                f.write_str(self.scheme())?;
                f.write_str(":")?;
                if !slots.is_empty() {
                    write!(f, "{words:02x}{trigrams:02x}")?;
                    for byte in slots.iter().chain(contrasts.iter().flatten()) {
                        write!(f, "{byte:02x}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why an attribute value could not be parsed as a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseFingerprintError {
    /// The value has no `<scheme>:` prefix.
    #[error("fingerprint has no scheme prefix")]
    MissingScheme,
    /// The scheme is not one this version understands; fingerprints of different schemes are
    /// never compared.
    #[error("unknown fingerprint scheme `{0}`")]
    UnknownScheme(String),
    /// The hex part is not as long as the scheme requires (256 hex digits for `mh64`, 260 for
    /// `mh64v2`, 260 and two per contrast mark for `mh64v3`), not hex, declares no words, or
    /// has contrast marks that are out of order or unknown.
    #[error("fingerprint signature is malformed")]
    BadSignature,
}

fn parse_hex<T>(
    hex: &str,
    width: usize,
    parse: fn(&str, u32) -> Result<T, std::num::ParseIntError>,
) -> Result<Vec<T>, ParseFingerprintError> {
    if !hex.is_ascii() || !hex.len().is_multiple_of(width) {
        return Err(ParseFingerprintError::BadSignature);
    }
    (0..hex.len() / width)
        .map(|i| parse(&hex[i * width..(i + 1) * width], 16))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ParseFingerprintError::BadSignature)
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, hex) = s
            .split_once(':')
            .ok_or(ParseFingerprintError::MissingScheme)?;
        match scheme {
            SCHEME_MH64 => {
                if !hex.is_empty() && hex.len() != SLOTS * 4 {
                    return Err(ParseFingerprintError::BadSignature);
                }
                Ok(Fingerprint {
                    repr: Repr::Mh64 {
                        slots: parse_hex(hex, 4, u16::from_str_radix)?,
                    },
                })
            }
            SCHEME_MH64V2 | SCHEME_MH64V3 => {
                let marked = scheme == SCHEME_MH64V3;
                if hex.is_empty() {
                    return Ok(Fingerprint {
                        repr: Repr::Mh64v2 {
                            words: 0,
                            trigrams: 0,
                            slots: Vec::new(),
                            contrasts: marked.then(Vec::new),
                        },
                    });
                }
                if hex.len() < V2_HEX_LEN || (!marked && hex.len() != V2_HEX_LEN) {
                    return Err(ParseFingerprintError::BadSignature);
                }
                let bytes = parse_hex(hex, 2, u8::from_str_radix)?;
                let (words, trigrams) = (bytes[0], bytes[1]);
                if words == 0 || trigrams == 0 {
                    return Err(ParseFingerprintError::BadSignature);
                }
                let (slots, marks) = bytes[2..].split_at(V2_SLOTS);
                let known = |mark: &u8| usize::from(*mark) < 2 * CONTRASTS.len();
                if !marks.iter().all(known) || !marks.windows(2).all(|w| w[0] < w[1]) {
                    return Err(ParseFingerprintError::BadSignature);
                }
                Ok(Fingerprint {
                    repr: Repr::Mh64v2 {
                        words,
                        trigrams,
                        slots: slots.to_vec(),
                        contrasts: marked.then(|| marks.to_vec()),
                    },
                })
            }
            other => Err(ParseFingerprintError::UnknownScheme(other.to_owned())),
        }
    }
}

/// The lowercased words of a query, without punctuation or apostrophes.
fn raw_words(query: &str) -> Vec<String> {
    query
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.replace('\'', ""))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A word of a query after phrases are read: a phrase's canonical word, or a word as written.
enum Word<'a> {
    Phrase(&'static str),
    Raw(&'a String),
}

/// Reads the [`PHRASES`] in a query's words, left to right.
fn phrase_words(raw: &[String]) -> Vec<Word<'_>> {
    let mut words = Vec::with_capacity(raw.len());
    let mut i = 0;
    'outer: while i < raw.len() {
        for (phrase, canonical) in PHRASES {
            let n = phrase.len();
            if raw.len() - i >= n && raw[i..i + n].iter().zip(*phrase).all(|(a, b)| a == b) {
                words.push(Word::Phrase(canonical));
                i += n;
                continue 'outer;
            }
        }
        words.push(Word::Raw(&raw[i]));
        i += 1;
    }
    words
}

/// `mh64v2` / `mh64v3` normalisation: lowercases, strips punctuation, reads phrases and
/// synonyms as one canonical word, stems and drops stopwords.
fn canonical_words(query: &str) -> Vec<String> {
    let raw = raw_words(query);
    let mut words = Vec::with_capacity(raw.len());
    for word in phrase_words(&raw) {
        match word {
            Word::Phrase(canonical) => words.push(canonical.to_owned()),
            Word::Raw(word) => {
                let canonical = synonym(word).map(str::to_owned).unwrap_or_else(|| {
                    let stemmed = stem(word);
                    synonym(&stemmed).map_or(stemmed, str::to_owned)
                });
                if !STOPWORDS.contains(&canonical.as_str()) {
                    words.push(canonical);
                }
            }
        }
    }
    words
}

fn synonym(word: &str) -> Option<&'static str> {
    SYNONYMS
        .iter()
        .find(|(from, _)| *from == word)
        .map(|(_, to)| *to)
}

/// `mh64` normalisation: lowercases, strips punctuation, stems and drops stopwords.
#[cfg(test)]
fn normalise(query: &str) -> Vec<String> {
    let lower = query.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.replace('\'', ""))
        .filter(|w| !w.is_empty())
        .map(|w| stem(&w))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// A light suffix stripper: plural and verb endings only, so related forms share a stem.
fn stem(word: &str) -> String {
    let n = word.chars().count();
    let strip = |suffix: &str, min_len: usize, replacement: &str| -> Option<String> {
        (n >= min_len && word.ends_with(suffix))
            .then(|| format!("{}{}", &word[..word.len() - suffix.len()], replacement))
    };
    strip("ies", 5, "y")
        .or_else(|| strip("ing", 6, ""))
        .or_else(|| strip("ed", 5, ""))
        .or_else(|| {
            strip("es", 5, "")
                .filter(|s| s.ends_with(['s', 'x', 'z']) || s.ends_with("ch") || s.ends_with("sh"))
        })
        .or_else(|| {
            strip("s", 4, "")
                .filter(|s| !s.ends_with('s') && !s.ends_with('u') && !s.ends_with('i'))
        })
        .unwrap_or_else(|| word.to_owned())
}

/// FNV-1a over the concatenation of `parts`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The splitmix64 finaliser: spreads one hash into an independent-looking one per seed.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per-slot seeds, fixed forever for the `mh64` scheme.
#[cfg(test)]
const SEEDS: [u64; SLOTS] = {
    let mut seeds = [0u64; SLOTS];
    let mut state: u64 = 0x636c_6f73_6564_6c70; // "closedlp"
    let mut i = 0;
    while i < SLOTS {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seeds[i] = z ^ (z >> 31);
        i += 1;
    }
    seeds
};

/// Per-slot seeds, fixed forever for the `mh64v2` and `mh64v3` schemes.
const V2_SEEDS: [u64; V2_SLOTS] = {
    let mut seeds = [0u64; V2_SLOTS];
    let mut state: u64 = 0x6d68_3634_7632_0000; // "mh64v2"
    let mut i = 0;
    while i < V2_SLOTS {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seeds[i] = z ^ (z >> 31);
        i += 1;
    }
    seeds
};

#[cfg(test)]
#[path = "fingerprint/tests.rs"]
mod tests;
