//! The edit detector: `edit` feedback is negative when the user changed much of the answer.

use serde::Deserialize;

use super::default_true;

/// `[detectors.edit]`: the application reports `edit` feedback whose value is the fraction of
/// the answer the user kept (1.0 used as is, 0.0 rewritten entirely). It is negative when the
/// changed fraction (1 − value) is above `max_changed_fraction`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EditDetectorConfig {
    /// Whether edits can be negative. When false, `edit` feedback is stored only. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The fraction of an answer (0..=1) a user may change before the edit counts as negative.
    /// Default 0.5 (an edit keeping less than half of the answer is negative).
    #[serde(default = "default_edit_max_changed_fraction")]
    pub max_changed_fraction: f64,
}

const fn default_edit_max_changed_fraction() -> f64 {
    0.5
}

impl Default for EditDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            max_changed_fraction: default_edit_max_changed_fraction(),
        }
    }
}

impl EditDetectorConfig {
    /// The kept fraction below which an `edit` is negative; `None` when edits never are.
    pub(super) fn negative_below(&self) -> Option<f64> {
        self.enabled
            .then(|| 1.0 - self.max_changed_fraction.clamp(0.0, 1.0))
    }
}
