//! The `[triage]` and `[notify]` sections.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::secret::Secret;
use crate::vocab::{FailureCategory, FailureSeverity, FailureStage};

/// The `[triage]` section: who owns a new failure record and by when it must be handled.
///
/// The rules are tried in order and the first whose every given field matches the record
/// decides its owner and SLA; a record no rule matches gets `default_owner` and
/// `default_sla_secs`. Routing is decided when the record is created and again at each new
/// revision while the record is still `open` (so a record that turns `critical` reaches the
/// rule for critical records); the due time is the record's creation time plus the SLA.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriageConfig {
    /// The routing rules, first match wins (`[[triage.rules]]`). Default: none.
    #[serde(default)]
    pub rules: Vec<TriageRule>,
    /// The owner of records no rule matches. Default: none (the record has no owner).
    #[serde(default)]
    pub default_owner: Option<String>,
    /// The SLA of records no rule matches (or whose rule has no `sla_secs`), in seconds.
    /// Default: none (no due time).
    #[serde(default)]
    pub default_sla_secs: Option<u64>,
    /// How often the receiver looks for records past their due time (SLA breaches, the
    /// `closedloop.triage.overdue` gauge) and for completed days to sample for review, in
    /// seconds. Default 60.
    #[serde(default = "default_check_interval_secs")]
    pub check_interval_secs: u64,
}

const fn default_check_interval_secs() -> u64 {
    60
}

/// One routing rule: every field given must match; `owner` and `sla_secs` are the result.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriageRule {
    /// The record's `closedloop.failure.category`, e.g. `"harmful"`.
    #[serde(default, deserialize_with = "enum_value")]
    pub category: Option<FailureCategory>,
    /// The record's `closedloop.failure.stage`, e.g. `"retrieval"`.
    #[serde(default, deserialize_with = "enum_value")]
    pub stage: Option<FailureStage>,
    /// The record's `closedloop.failure.severity`, e.g. `"critical"`.
    #[serde(default, deserialize_with = "enum_value")]
    pub severity: Option<FailureSeverity>,
    /// The judged response's `closedloop.prompt.template.id`.
    #[serde(default)]
    pub template_id: Option<String>,
    /// The judged response's `gen_ai.data_source.id`.
    #[serde(default)]
    pub data_source: Option<String>,
    /// Makes the rule one for monitors' alerts instead of failure records: the monitor kind
    /// (`failure_rate`, `signal_rate`, `query_drift`) or the start of the monitor's key
    /// (`failure_rate/template_version/support-answer@3`). With `template_id` or
    /// `data_source`, only alerts of that group match.
    #[serde(default)]
    pub monitor: Option<String>,
    /// The person or team that gets the record (`closedloop.triage.owner`).
    pub owner: String,
    /// How long the owner has, in seconds, from the record's creation; without it the
    /// section's `default_sla_secs` applies.
    #[serde(default)]
    pub sla_secs: Option<u64>,
}

impl TriageRule {
    /// Whether the rule's `template_id` and `data_source`, where given, are these.
    pub(crate) fn matches_group(
        &self,
        template_id: Option<&str>,
        data_source: Option<&str>,
    ) -> bool {
        self.template_id
            .as_deref()
            .is_none_or(|wanted| Some(wanted) == template_id)
            && self
                .data_source
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == data_source)
    }
}

fn enum_value<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    Option::<String>::deserialize(deserializer)?
        .map(|value| value.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// The `[notify]` section: Slack-compatible webhook notifications (`{"text": ..., "blocks":
/// [...]}` POSTed as JSON) for new failure records and SLA breaches.
///
/// Notifications are written to the store in the same transaction as the change they report
/// and delivered by a background task, retried with exponential backoff, so a slow or failing
/// webhook never delays ingestion and nothing is lost across restarts. Each breach is
/// notified once.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The webhook URL, e.g. a Slack incoming webhook. The URL is a bearer secret:
    /// `closedloop check-config` and logs show it redacted. Without one, nothing is notified.
    /// Default: none.
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// Notify each new failure record. Default true.
    #[serde(default = "default_true")]
    pub on_new_failure: bool,
    /// Notify each record that passes its due time while open or acknowledged. Default true.
    #[serde(default = "default_true")]
    pub on_sla_breach: bool,
    /// Notify each monitor alert when it fires and when it resolves. Default true.
    #[serde(default = "default_true")]
    pub on_alert: bool,
    /// The timeout of one webhook request, in milliseconds. Default 5000.
    #[serde(default = "default_timeout_millis")]
    pub timeout_millis: u64,
    /// The first retry delay after a failed delivery, in milliseconds; doubles on each
    /// failure. Default 1000.
    #[serde(default = "default_initial_backoff_millis")]
    pub initial_backoff_millis: u64,
    /// The longest retry delay, in seconds. Default 300.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
}

const fn default_true() -> bool {
    true
}

const fn default_timeout_millis() -> u64 {
    5_000
}

const fn default_initial_backoff_millis() -> u64 {
    1_000
}

const fn default_max_backoff_secs() -> u64 {
    300
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            on_new_failure: default_true(),
            on_sla_breach: default_true(),
            on_alert: default_true(),
            timeout_millis: default_timeout_millis(),
            initial_backoff_millis: default_initial_backoff_millis(),
            max_backoff_secs: default_max_backoff_secs(),
        }
    }
}

impl Default for TriageConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default_owner: None,
            default_sla_secs: None,
            check_interval_secs: default_check_interval_secs(),
        }
    }
}
