use serde::Deserialize;

/// The `[detectors]` section: implicit signals read from behaviour. Thumbs are rare and
/// self-selected; these detectors write feedback (`closedloop.feedback.source` = `detector`,
/// kind `implicit`) that goes through the same join and failure-record rules as explicit
/// feedback. Everything works with content capture off (query fingerprints only).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    /// The next query of a session asks the previous one again in other words
    /// (`[detectors.rephrase]`).
    #[serde(default)]
    pub rephrase: RephraseDetectorConfig,
    /// The next query of a session is the previous one again (`[detectors.regenerate]`).
    #[serde(default)]
    pub regenerate: RegenerateDetectorConfig,
    /// A session went quiet after its last response (`[detectors.abandon]`).
    #[serde(default)]
    pub abandon: AbandonDetectorConfig,
    /// The user changed much of an answer before using it (`[detectors.edit]`).
    #[serde(default)]
    pub edit: EditDetectorConfig,
}

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

/// `[detectors.abandon]`: the last response of a session gets `abandon` feedback (negative,
/// weak) when the session shows no further activity (no further response, no feedback other
/// than from detectors) for `window_secs` after it arrived. A `copy` or `thumbs_up` (any
/// feedback) cancels it.
///
/// Off by default: a user who got the answer and left looks exactly like one who gave up, so
/// on help-desk traffic this marks many good answers. Turn it on where sessions normally end
/// with an action (copy, resolve, thumbs) and silence really means failure.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AbandonDetectorConfig {
    /// Whether the detector runs. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How long a session must stay quiet after its last response, in seconds. Default 1800.
    #[serde(default = "default_abandon_window_secs")]
    pub window_secs: u64,
    /// How often quiet sessions are looked for, in seconds. Default 60.
    #[serde(default = "default_abandon_check_interval_secs")]
    pub check_interval_secs: u64,
}

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

const fn default_true() -> bool {
    true
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

const fn default_regenerate_window_secs() -> u64 {
    600
}

const fn default_regenerate_threshold() -> f64 {
    0.95
}

const fn default_abandon_window_secs() -> u64 {
    1800
}

const fn default_abandon_check_interval_secs() -> u64 {
    60
}

const fn default_edit_max_changed_fraction() -> f64 {
    0.5
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

impl Default for RegenerateDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            window_secs: default_regenerate_window_secs(),
            threshold: default_regenerate_threshold(),
        }
    }
}

impl Default for AbandonDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            window_secs: default_abandon_window_secs(),
            check_interval_secs: default_abandon_check_interval_secs(),
        }
    }
}

impl Default for EditDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            max_changed_fraction: default_edit_max_changed_fraction(),
        }
    }
}
