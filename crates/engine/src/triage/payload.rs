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
