//! The regenerate detector: the next query of a session is the previous one again, so the
//! previous response gets `regenerate` feedback (before `rephrase` is considered).

use std::time::Duration;

use serde::Deserialize;

use super::default_true;

/// `[detectors.regenerate]`: when the next query in a session is the previous query again
/// (similarity at or above `threshold`, higher than the rephrase threshold), the previous
/// response gets `regenerate` feedback instead of `rephrase`. An explicit regenerate action
/// reported by the application arrives as ordinary feedback and is not affected.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegenerateDetectorConfig {
    /// Whether the detector runs. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The longest gap between the previous response and the repeated query, in seconds.
    /// Default 600.
    #[serde(default = "default_regenerate_window_secs")]
    pub window_secs: u64,
    /// The similarity (0..=1; fingerprint or text) from which the next query is the same
    /// query again. Default 0.95.
    #[serde(default = "default_regenerate_threshold")]
    pub threshold: f64,
}

const fn default_regenerate_window_secs() -> u64 {
    600
}

const fn default_regenerate_threshold() -> f64 {
    0.95
}

impl Default for RegenerateDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            window_secs: default_regenerate_window_secs(),
            threshold: default_regenerate_threshold(),
        }
    }
}

impl RegenerateDetectorConfig {
    /// Whether a next query `gap` after the previous response, `similarity` to its query,
    /// makes the previous response regenerated.
    pub(super) fn judges(&self, gap: Duration, similarity: f64) -> bool {
        self.enabled && gap <= Duration::from_secs(self.window_secs) && similarity >= self.threshold
    }
}
