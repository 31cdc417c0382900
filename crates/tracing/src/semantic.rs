//! Semantic query fingerprints: a locality-sensitive hash of the query's embedding, so the
//! receiver can tell a question asked again in other words without the vector or the text
//! ever leaving the application.
//!
//! Scheme `sh512`: random-hyperplane SimHash (Charikar, *Similarity estimation techniques from
//! rounding algorithms*, STOC 2002) with 512 hyperplanes whose entries are ±1 (Achlioptas,
//! *Database-friendly random projections*, 2003). Bit *j* is set when the embedding's dot
//! product with hyperplane *j* is positive. Two embeddings at angle θ differ in each bit with
//! probability θ/π, so the Hamming distance *h* estimates the cosine as cos(π·h/512). With 512 bits the
//! estimate's standard deviation near a cosine of 0.8 is about 0.046 (0.064 with 256 bits),
//! below the gap between a paraphrase and a question that swaps one key word.
//!
//! The hyperplanes are a pure function of the model's name and the embedding's dimension
//! (SplitMix64 seeded by FNV-1a over `closedloop sh512`, the name and the dimension, one sign
//! per draw bit, dimension-major), so the same query embedded by the same model gets the same
//! fingerprint in every process, language and release; fingerprints of different models are
//! never compared. Only arithmetic that is exact or correctly rounded (integer hashing, f64
//! additions in a fixed order) is used, so no platform's maths library changes a bit.

use std::fmt;
use std::str::FromStr;

/// The scheme name of a semantic fingerprint.
const SCHEME: &str = "sh512";
/// The number of hyperplanes, and so of bits.
const BITS: usize = 512;
/// 64-bit words in a fingerprint.
const WORDS: usize = BITS / 64;

/// The cosine estimate at or above which two consecutive queries are likely the same question
/// asked differently (for `sh512` fingerprints of `all-MiniLM-L6-v2` embeddings).
///
/// Chosen on the receiver's tuning fixture of labelled help-desk pairs as the lowest threshold
/// at which the receiver's combined detector (this threshold, the lexical rescue and the
/// contrast check) has a precision there of at least 0.95 (a false rephrasing files a failure
/// against a good answer); see the receiver's rephrase benchmark. Other embedding models place paraphrases at
/// other cosines: score your own labelled pairs with the benchmark and set the receiver's
/// `[detectors.rephrase] semantic_threshold`.
pub const SUGGESTED_SEMANTIC_THRESHOLD: f64 = 0.75;

/// Computes [`SemanticFingerprint`]s of one embedding model's vectors. Build it once per model
/// and reuse it: it holds the model's 512 hyperplanes.
#[derive(Clone)]
pub struct SemanticHasher {
    model: String,
    dimensions: usize,
    /// For each dimension, the signs of the 512 hyperplanes' entries (bit set: +1).
    signs: Vec<[u64; WORDS]>,
}

impl fmt::Debug for SemanticHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemanticHasher")
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

/// Why an embedding or a model name cannot be fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SemanticFingerprintError {
    /// The model name is empty, or holds a `:` or whitespace.
    #[error("the embedding model name must be non-empty without ':' or whitespace: {0:?}")]
    ModelName(String),
    /// The embedding has another length than the hasher was built for.
    #[error("the embedding has {got} dimensions, the model {expected}")]
    Dimensions {
        /// The model's dimension.
        expected: usize,
        /// The embedding's length.
        got: usize,
    },
    /// The embedding holds a NaN or an infinity, or is all zeros.
    #[error("the embedding is zero or not finite")]
    NotFinite,
}

impl SemanticHasher {
    /// A hasher for `model`'s embeddings of `dimensions` values. The name is part of every
    /// fingerprint: use the model's own name (`all-MiniLM-L6-v2`, `text-embedding-3-small`).
    pub fn new(model: &str, dimensions: usize) -> Result<Self, SemanticFingerprintError> {
        if model.is_empty() || model.contains(':') || model.chars().any(char::is_whitespace) {
            return Err(SemanticFingerprintError::ModelName(model.to_owned()));
        }
        let mut seed = Fnv1a::new();
        seed.write(b"closedloop sh512\0");
        seed.write(model.as_bytes());
        seed.write(b"\0");
        seed.write(&(dimensions as u64).to_le_bytes());
        let mut random = SplitMix64(seed.0);
        let signs = (0..dimensions)
            .map(|_| std::array::from_fn(|_| random.next()))
            .collect();
        Ok(Self {
            model: model.to_owned(),
            dimensions,
            signs,
        })
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The embedding length this hasher takes.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The fingerprint of `embedding` (any scale: only its direction matters).
    pub fn fingerprint(
        &self,
        embedding: &[f32],
    ) -> Result<SemanticFingerprint, SemanticFingerprintError> {
        if embedding.len() != self.dimensions {
            return Err(SemanticFingerprintError::Dimensions {
                expected: self.dimensions,
                got: embedding.len(),
            });
        }
        if embedding.iter().any(|v| !v.is_finite()) || embedding.iter().all(|v| *v == 0.0) {
            return Err(SemanticFingerprintError::NotFinite);
        }
        // Plane j's dot product is Σ sᵢⱼ·xᵢ = 2·Σ_{sᵢⱼ=+1} xᵢ − Σ xᵢ.
        let mut positive = [0f64; BITS];
        let mut total = 0f64;
        for (x, signs) in embedding.iter().zip(&self.signs) {
            let x = f64::from(*x);
            total += x;
            // Adding 0.0 where the sign is −1 leaves every sum exactly as skipping it would,
            // and lets the compiler vectorise the loop.
            for (sums, word) in positive.chunks_exact_mut(64).zip(signs) {
                for (bit, sum) in sums.iter_mut().enumerate() {
                    *sum += if word >> bit & 1 == 1 { x } else { 0.0 };
                }
            }
        }
        let mut bits = [0u64; WORDS];
        for (j, sum) in positive.iter().enumerate() {
            if 2.0 * sum - total > 0.0 {
                bits[j / 64] |= 1 << (j % 64);
            }
        }
        Ok(SemanticFingerprint {
            model: self.model.clone(),
            bits,
        })
    }
}

/// A semantic query fingerprint, `sh512:<model>:<128 hex digits>` as an attribute value
/// (`closedloop.query.semantic_fingerprint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SemanticFingerprint {
    model: String,
    bits: [u64; WORDS],
}

impl SemanticFingerprint {
    /// The embedding model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The number of bits in which the two fingerprints differ; `None` across models.
    pub fn hamming(&self, other: &SemanticFingerprint) -> Option<u32> {
        (self.model == other.model).then(|| {
            self.bits
                .iter()
                .zip(&other.bits)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum()
        })
    }

    /// The estimated cosine similarity of the two embeddings, cos(π·h/512), in −1..=1;
    /// `None` when the fingerprints come from different models.
    pub fn similarity(&self, other: &SemanticFingerprint) -> Option<f64> {
        self.hamming(other)
            .map(|h| (std::f64::consts::PI * f64::from(h) / BITS as f64).cos())
    }
}

impl fmt::Display for SemanticFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}:{}:", self.model)?;
        for word in self.bits {
            write!(f, "{word:016x}")?;
        }
        Ok(())
    }
}

/// Why an attribute value is not a [`SemanticFingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseSemanticFingerprintError {
    /// Not of the form `sh512:<model>:<hex>`.
    #[error("not a semantic fingerprint (sh512:<model>:<128 hex digits>)")]
    Format,
}

impl FromStr for SemanticFingerprint {
    type Err = ParseSemanticFingerprintError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or(ParseSemanticFingerprintError::Format)?;
        let (model, hex) = rest
            .rsplit_once(':')
            .ok_or(ParseSemanticFingerprintError::Format)?;
        if model.is_empty() || model.contains(':') || hex.len() != WORDS * 16 {
            return Err(ParseSemanticFingerprintError::Format);
        }
        let mut bits = [0u64; WORDS];
        for (i, word) in bits.iter_mut().enumerate() {
            *word = hex
                .get(i * 16..(i + 1) * 16)
                .and_then(|digits| u64::from_str_radix(digits, 16).ok())
                .ok_or(ParseSemanticFingerprintError::Format)?;
        }
        Ok(Self {
            model: model.to_owned(),
            bits,
        })
    }
}

/// 64-bit FNV-1a.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed embedding of exact binary fractions.
    fn embedding(dimensions: usize, shift: usize) -> Vec<f32> {
        (0..dimensions)
            .map(|i| ((i * 37 + shift) % 101) as f32 / 64.0 - 0.78125)
            .collect()
    }

    #[test]
    fn the_scheme_is_stable_across_releases() {
        // Changing any of these strings changes every fingerprint ever exported: that needs a
        // new scheme name, not an edit here.
        let hasher = SemanticHasher::new("test-model", 8).unwrap();
        let fp = hasher.fingerprint(&embedding(8, 0)).unwrap();
        assert_eq!(fp.to_string(), EXPECTED_8);
        let hasher = SemanticHasher::new("all-MiniLM-L6-v2", 384).unwrap();
        let fp = hasher.fingerprint(&embedding(384, 5)).unwrap();
        assert_eq!(fp.to_string(), EXPECTED_384);
    }

    const EXPECTED_8: &str = "sh512:test-model:238034318aeb8d37b39ed03197dd01c3a1a9f31fa1ab674836bf3e8c8fd82735eaa6c12387fa27b224a97ed3704a40b0592c63f4df30dfcff9972b146cc61f51";
    const EXPECTED_384: &str = "sh512:all-MiniLM-L6-v2:ea32b68ce8b8b23c893abfd6056bdf4eef576c6cef0c6380f380cb02d13343e4caaaf45561b16824a076170dc63d8a3ee1c4417373a9304ee98a01b1f574ed42";

    #[test]
    fn round_trips_and_compares_within_a_model_only() {
        let hasher = SemanticHasher::new("m", 384).unwrap();
        let a = hasher.fingerprint(&embedding(384, 0)).unwrap();
        let parsed: SemanticFingerprint = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert_eq!(a.similarity(&a), Some(1.0));
        let other = SemanticHasher::new("n", 384).unwrap();
        assert_eq!(
            a.similarity(&other.fingerprint(&embedding(384, 0)).unwrap()),
            None
        );
        // Scale does not matter; the opposite direction is −1.
        let doubled: Vec<f32> = embedding(384, 0).iter().map(|v| v * 2.0).collect();
        assert_eq!(hasher.fingerprint(&doubled).unwrap(), a);
        let negated: Vec<f32> = embedding(384, 0).iter().map(|v| -v).collect();
        let opposite = hasher.fingerprint(&negated).unwrap();
        assert!(a.similarity(&opposite).unwrap() < -0.99);
    }

    #[test]
    fn the_estimate_tracks_the_cosine() {
        let hasher = SemanticHasher::new("m", 384).unwrap();
        let a = embedding(384, 0);
        for mix in [0.2f32, 0.5, 0.8] {
            let b: Vec<f32> = a
                .iter()
                .zip(embedding(384, 50))
                .map(|(x, y)| mix * x + (1.0 - mix) * y)
                .collect();
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cosine = f64::from(dot / (norm(&a) * norm(&b)));
            let estimate = hasher
                .fingerprint(&a)
                .unwrap()
                .similarity(&hasher.fingerprint(&b).unwrap())
                .unwrap();
            assert!((estimate - cosine).abs() < 0.2, "{estimate} vs {cosine}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_hash() {
        assert!(SemanticHasher::new("a:b", 4).is_err());
        assert!(SemanticHasher::new("", 4).is_err());
        let hasher = SemanticHasher::new("m", 4).unwrap();
        assert_eq!(
            hasher.fingerprint(&[1.0, 2.0]),
            Err(SemanticFingerprintError::Dimensions {
                expected: 4,
                got: 2
            })
        );
        assert_eq!(
            hasher.fingerprint(&[0.0; 4]),
            Err(SemanticFingerprintError::NotFinite)
        );
        assert_eq!(
            hasher.fingerprint(&[1.0, f32::NAN, 0.0, 0.0]),
            Err(SemanticFingerprintError::NotFinite)
        );
        for bad in [
            "sh512:m:00",
            "mh64v2:m:00",
            "sh512::00",
            &format!("sh512:m:{}", "g".repeat(128)),
        ] {
            assert!(bad.parse::<SemanticFingerprint>().is_err(), "{bad}");
        }
    }
}
