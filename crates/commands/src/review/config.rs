//! The `[review]` section.

use serde::Deserialize;

/// The `[review]` section: the daily sample of responses for people to read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// Responses sampled into the review queue per UTC day; 0 turns the daily sample off.
    /// Default 100.
    #[serde(default = "default_daily_sample_size")]
    pub daily_sample_size: usize,
    /// The share of the daily sample, from 0.0 to 1.0, drawn from responses that got an
    /// implicit negative signal (rephrase, regenerate, abandon, a low edit), to oversample
    /// likely failures; the rest is drawn from the other responses. 0.0 draws one uniform
    /// sample of all responses. Default 0.0.
    #[serde(default)]
    pub implicit_negative_share: f64,
    /// The seed of the sampler. Each day's seed is derived from it and the date, so samples
    /// are reproducible; without it each day gets a random seed. Either way the day's seed is
    /// recorded with its sample. Default: none.
    #[serde(default)]
    pub seed: Option<u64>,
    /// How long after a UTC day ends its sample is drawn, in seconds, so that implicit
    /// signals that come late (abandon) are in. Default 3600.
    #[serde(default = "default_sample_delay_secs")]
    pub sample_delay_secs: u64,
}

const fn default_daily_sample_size() -> usize {
    100
}

const fn default_sample_delay_secs() -> u64 {
    3_600
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            daily_sample_size: default_daily_sample_size(),
            implicit_negative_share: 0.0,
            seed: None,
            sample_delay_secs: default_sample_delay_secs(),
        }
    }
}
