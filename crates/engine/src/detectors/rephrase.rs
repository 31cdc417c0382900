//! The rephrase detector: the next query of a session asks the previous one again in other
//! words, so the previous response gets `rephrase` feedback.

use std::time::Duration;

use serde::Deserialize;

use super::default_true;

/// `[detectors.rephrase]`: when the next query in a session (`session.id`) arrives within
/// `window_secs` of the previous response and is a near-duplicate of the previous query, the
/// previous response gets `rephrase` feedback (negative). Queries are compared by their text
/// (`closedloop.query.text`) when the store holds both, otherwise by their fingerprints
/// (`closedloop.query.fingerprint`, scheme `mh64v2`).
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

impl Default for RephraseDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            window_secs: default_rephrase_window_secs(),
            threshold: default_rephrase_threshold(),
            text_threshold: default_rephrase_text_threshold(),
        }
    }
}

impl RephraseDetectorConfig {
    /// Whether a next query `gap` after the previous response, `similarity` to its query,
    /// makes it a rephrasing; `threshold` is [`Self::text_threshold`] for a text similarity
    /// and [`Self::threshold`] for a fingerprint one.
    pub(super) fn judges(&self, gap: Duration, similarity: f64, threshold: f64) -> bool {
        self.enabled && gap <= Duration::from_secs(self.window_secs) && similarity >= threshold
    }
}
