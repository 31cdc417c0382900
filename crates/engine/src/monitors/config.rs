//! The `[monitoring]` and `[[monitors]]` sections.

use serde::Deserialize;

use closedloop_stats::monitor::Direction;

use crate::vocab::{AlertKind, FeedbackSignal};

/// The `[monitoring]` section: how every monitor decides.
///
/// Each monitor watches a rate tick by tick (an hour by default) with a CUSUM over its own
/// trailing baseline (`closedloop_stats::monitor`). `in_control_days` is the mean time
/// between false alarms of one monitor on traffic that does not change: with the default
/// monitors on a service of three template versions, two models and two data sources (about
/// a dozen monitors) and 730 days each, about one false alarm in two months across all.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Run the monitors. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The length of a tick, in seconds. Default 3600.
    #[serde(default = "default_tick_secs")]
    pub tick_secs: u64,
    /// How long after a tick ends it is read, so that its feedback (a rephrase, an abandon)
    /// has come, in seconds. Default 3600.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// The in-control average run length of each monitor, in days. Default 730.
    #[serde(default = "default_in_control_days")]
    pub in_control_days: f64,
    /// The days the baseline is taken over (and the drift monitor's memory of queries).
    /// Default 28.
    #[serde(default = "default_baseline_days")]
    pub baseline_days: u64,
    /// The most recent hours left out of the baseline. Default 24.
    #[serde(default = "default_guard_hours")]
    pub guard_hours: u64,
    /// The relative change a monitor is built to catch (0.5: 10% to 15%, or a signal at
    /// half its rate). Default 0.5.
    #[serde(default = "default_relative_change")]
    pub relative_change: f64,
    /// The fewest events a baseline needs before its monitor decides. Default 20.
    #[serde(default = "default_min_baseline_events")]
    pub min_baseline_events: u64,
    /// The most query band keys the drift monitor remembers (about 40 bytes each).
    /// Default 2,000,000.
    #[serde(default = "default_max_query_keys")]
    pub max_query_keys: usize,
}

const fn default_true() -> bool {
    true
}
const fn default_tick_secs() -> u64 {
    3_600
}
const fn default_settle_secs() -> u64 {
    3_600
}
const fn default_in_control_days() -> f64 {
    730.0
}
const fn default_baseline_days() -> u64 {
    28
}
const fn default_guard_hours() -> u64 {
    24
}
const fn default_relative_change() -> f64 {
    0.5
}
const fn default_min_baseline_events() -> u64 {
    20
}
const fn default_max_query_keys() -> usize {
    2_000_000
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            tick_secs: default_tick_secs(),
            settle_secs: default_settle_secs(),
            in_control_days: default_in_control_days(),
            baseline_days: default_baseline_days(),
            guard_hours: default_guard_hours(),
            relative_change: default_relative_change(),
            min_baseline_events: default_min_baseline_events(),
            max_query_keys: default_max_query_keys(),
        }
    }
}

impl MonitoringConfig {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.tick_secs == 0 || self.tick_secs > 86_400 {
            return Err("monitoring.tick_secs must be between 1 and 86400".into());
        }
        if !(self.in_control_days.is_finite() && self.in_control_days > 0.0) {
            return Err("monitoring.in_control_days must be positive".into());
        }
        if self.baseline_days == 0 {
            return Err("monitoring.baseline_days must be at least 1".into());
        }
        if !(self.relative_change > 0.0 && self.relative_change < 1.0) {
            return Err("monitoring.relative_change must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// What responses a failure-rate monitor groups by.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MonitorGroup {
    /// Every response together.
    All,
    /// `closedloop.prompt.template.id@closedloop.prompt.template.version`: one monitor each.
    TemplateVersion,
    /// `gen_ai.request.model`: one monitor each.
    Model,
    /// `gen_ai.data_source.id`: one monitor each.
    DataSource,
}

impl MonitorGroup {
    /// The name in a monitor's key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::TemplateVersion => "template_version",
            Self::Model => "model",
            Self::DataSource => "data_source",
        }
    }
}

/// One `[[monitors]]` entry. Without any, the receiver runs the defaults
/// ([`MonitorSpec::defaults`]): the failure rate per template version, per model and per
/// data source, the rate of each negative signal, the query-mix drift, and the reviewers'
/// bad-label rate per template version.
///
/// ```toml
/// [[monitors]]
/// kind = "failure_rate"
/// by = "template_version"
///
/// [[monitors]]
/// kind = "signal_rate"
/// signal = "thumbs_down"
///
/// [[monitors]]
/// kind = "query_drift"
/// relative_change = 0.3
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// What it watches: `failure_rate` (share of responses with a failure record, rising),
    /// `signal_rate` (share with negative feedback of a signal, falling: a broken button or
    /// a detector gone quiet), `query_drift` (share of queries with no near neighbour among
    /// the last `baseline_days` of queries or the eval set, rising) or `label_rate` (share of
    /// the uniform review sample labelled bad, by the time of the label, rising: the unbiased
    /// rate, slow at a few dozen labels a day).
    #[serde(deserialize_with = "alert_kind")]
    pub kind: AlertKind,
    /// For `failure_rate`: what to group by; for `label_rate`, `all` or `template_version`.
    /// Default `all`.
    #[serde(default)]
    pub by: Option<MonitorGroup>,
    /// For `signal_rate`: the signal. Default: every signal seen, one monitor each.
    #[serde(default, deserialize_with = "signal")]
    pub signal: Option<FeedbackSignal>,
    /// Overrides `monitoring.relative_change`.
    #[serde(default)]
    pub relative_change: Option<f64>,
    /// Overrides `monitoring.in_control_days`.
    #[serde(default)]
    pub in_control_days: Option<f64>,
}

fn alert_kind<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<AlertKind, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("unknown monitor kind {text:?}")))
}

fn signal<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<FeedbackSignal>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| {
            text.parse()
                .map_err(|_| serde::de::Error::custom(format!("unknown signal {text:?}")))
        })
        .transpose()
}

impl MonitorSpec {
    /// The monitors run without a `[[monitors]]` entry.
    pub fn defaults() -> Vec<Self> {
        let spec = |kind, by| Self {
            kind,
            by,
            signal: None,
            relative_change: None,
            in_control_days: None,
        };
        vec![
            spec(AlertKind::FailureRate, Some(MonitorGroup::TemplateVersion)),
            spec(AlertKind::FailureRate, Some(MonitorGroup::Model)),
            spec(AlertKind::FailureRate, Some(MonitorGroup::DataSource)),
            spec(AlertKind::SignalRate, None),
            spec(AlertKind::QueryDrift, None),
            spec(AlertKind::LabelRate, Some(MonitorGroup::TemplateVersion)),
        ]
    }

    /// Checks that the entry's fields go with its kind; the error says which does not.
    pub fn validate(&self) -> Result<(), String> {
        let kind = self.kind.as_str();
        match (self.kind, self.by) {
            (AlertKind::FailureRate, _) | (_, None) => {}
            (AlertKind::LabelRate, Some(MonitorGroup::All | MonitorGroup::TemplateVersion)) => {}
            (_, Some(by)) => {
                return Err(format!(
                    "monitors: kind {kind} cannot group by {}",
                    by.as_str()
                ));
            }
        }
        if self.signal.is_some() && self.kind != AlertKind::SignalRate {
            return Err(format!("monitors: kind {kind} has no signal"));
        }
        if let Some(change) = self.relative_change {
            if !(change > 0.0 && change < 1.0) {
                return Err(format!(
                    "monitors: relative_change {change} is not between 0 and 1"
                ));
            }
        }
        if let Some(days) = self.in_control_days {
            if !(days.is_finite() && days > 0.0) {
                return Err(format!("monitors: in_control_days {days} is not positive"));
            }
        }
        Ok(())
    }

    /// Which way it looks.
    pub fn direction(&self) -> Direction {
        match self.kind {
            AlertKind::SignalRate => Direction::Fall,
            _ => Direction::Rise,
        }
    }
}
