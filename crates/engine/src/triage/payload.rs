//! The webhook bodies of notifications (Slack-compatible: `text`, with `blocks` for rich
//! clients). The new-record one is queued by the writer in the transaction that made the
//! record; the SLA-breach one by the background check.

use serde_json::json;

use crate::failure_span::failure_id;
use crate::records::{Response, SpanRef};
use crate::rules::Decision;
use crate::timefmt::format_rfc3339;

use super::Assignment;

/// The notification kind of a new failure record.
pub const KIND_NEW: &str = "new_failure";
/// The notification kind of an SLA breach.
pub const KIND_BREACH: &str = "sla_breach";
/// The notification kind of a monitor's alert firing.
pub const KIND_ALERT_FIRED: &str = "alert_fired";
/// The notification kind of a monitor's alert resolving.
pub const KIND_ALERT_RESOLVED: &str = "alert_resolved";

fn slack(text: String, details: String, context: String) -> String {
    json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": details } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": context } ] },
        ],
    })
    .to_string()
}

fn owner_text(owner: Option<&str>) -> &str {
    owner.unwrap_or("nobody")
}

/// The webhook body announcing a new failure record.
pub fn new_failure_payload(
    key: SpanRef,
    decision: &Decision,
    assignment: &Assignment,
    response: Option<&Response>,
) -> String {
    let id = failure_id(key);
    let due = assignment
        .due_s
        .map(|due| format!(", due {}", format_rfc3339(due)))
        .unwrap_or_default();
    let owner = owner_text(assignment.owner.as_deref());
    let text = format!(
        "New failure record {id}: {} ({}, {} stage), owner {owner}{due}",
        decision.category.as_str(),
        decision.severity.as_str(),
        decision.stage.as_str(),
    );
    let details = format!(
        "*New failure record* `{id}`\n*Category:* {}  *Severity:* {}  *Stage:* {}\n*Owner:* {owner}{due}",
        decision.category.as_str(),
        decision.severity.as_str(),
        decision.stage.as_str(),
    );
    let template = response
        .and_then(|response| {
            let id = response.template.id.as_deref()?;
            Some(match response.template.version.as_deref() {
                Some(version) => format!("template {id}@{version}"),
                None => format!("template {id}"),
            })
        })
        .unwrap_or_else(|| "template unknown".to_owned());
    let signals = decision
        .signals
        .iter()
        .map(|signal| signal.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    slack(
        text,
        details,
        format!(
            "{template} · signals {signals} · trace {}",
            hex::encode(key.trace_id)
        ),
    )
}

/// The webhook body announcing an SLA breach.
pub fn breach_payload(
    key: SpanRef,
    owner: Option<&str>,
    due_s: i64,
    now_s: i64,
    category: &str,
    severity: &str,
) -> String {
    let id = failure_id(key);
    let owner = owner_text(owner);
    let due = format_rfc3339(due_s);
    let late = now_s.saturating_sub(due_s).max(0);
    slack(
        format!("SLA breach: failure record {id} ({category}, {severity}) owned by {owner} was due {due}"),
        format!("*SLA breach* `{id}`\n*Owner:* {owner}  *Due:* {due} ({late} s ago)\n*Category:* {category}  *Severity:* {severity}"),
        format!("trace {}", hex::encode(key.trace_id)),
    )
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The webhook body announcing that a monitor's alert fired or resolved.
pub fn alert_payload(alert: &closedloop_store::records::Alert, resolved: bool) -> String {
    let what = match alert.kind.as_str() {
        "failure_rate" => "failure rate",
        "signal_rate" => "signal rate",
        "query_drift" => "share of new queries",
        "label_rate" => "share of reviewed answers labelled bad",
        other => other,
    };
    let group = if alert.dimension == "all" {
        String::new()
    } else {
        format!(
            " of {} `{}`",
            alert.dimension.replace('_', " "),
            alert.value
        )
    };
    let moved = if alert.direction == "fall" {
        "fell"
    } else {
        "rose"
    };
    let text = if resolved {
        format!(
            "closedloop: the {what}{group} is back at its baseline of {} (alert_{})",
            percent(alert.baseline_rate),
            alert.id
        )
    } else {
        format!(
            "closedloop: the {what}{group} {moved} from {} to {} (alert_{})",
            percent(alert.baseline_rate),
            percent(alert.observed_rate),
            alert.id
        )
    };
    let details = format!(
        "*{}*\nBaseline {} · observed {} over {} responses · CUSUM {:.1} of {:.1}",
        alert.monitor,
        percent(alert.baseline_rate),
        percent(alert.observed_rate),
        alert.trials,
        alert.statistic,
        alert.threshold
    );
    let clusters = alert
        .detail
        .as_deref()
        .and_then(|detail| serde_json::from_str::<serde_json::Value>(detail).ok())
        .and_then(|detail| {
            let sizes: Vec<String> = detail["clusters"]
                .as_array()?
                .iter()
                .filter_map(|cluster| cluster["queries"].as_u64())
                .map(|size| size.to_string())
                .collect();
            (!sizes.is_empty()).then(|| format!("\nNew query clusters: {}", sizes.join(", ")))
        })
        .unwrap_or_default();
    let details = details + &clusters;
    let context = format!(
        "Owner: {} · due {}",
        owner_text(alert.owner.as_deref()),
        alert
            .due_s
            .map_or_else(|| "never".to_owned(), format_rfc3339)
    );
    slack(text, details, context)
}
