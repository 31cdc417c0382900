//! Triage: every failure record gets a named owner, a status and a due time.
//!
//! [`TriageConfig`] routes a record to an owner with an SLA (first matching rule wins). The
//! owner, status (`open`, `acknowledged`, `resolved`, `wont_fix`) and due time live on the
//! record in the store and on every exported revision (`closedloop.triage.owner`,
//! `closedloop.triage.status`, `closedloop.triage.due_time`); a status change
//! is a new revision, exported like the others. A background task of the running receiver
//! counts records past their due time (the `closedloop.triage.overdue` gauge, kept here in
//! [`TriageShared`]), queues one webhook notification per SLA breach, and delivers the
//! notification queue (see [`NotifyConfig`]).

mod config;
pub mod payload;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

pub use config::{NotifyConfig, TriageConfig, TriageRule};

use crate::join::Tx;
use crate::records::{Response, SpanRef};
use crate::rules::Decision;
use crate::store::StoreError;
use crate::vocab::TriageStatus;

/// The triage fields of one failure-record revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The owner (`None`: nobody).
    pub owner: Option<String>,
    /// The triage status.
    pub status: TriageStatus,
    /// When the record is due, in seconds since the Unix epoch.
    pub due_s: Option<i64>,
}

/// Triage state shared by the writer thread, the background task and the metrics callback.
#[derive(Debug, Default)]
pub struct TriageShared {
    config: TriageConfig,
    /// Whether new records queue a webhook notification.
    notify_new: bool,
    /// Wakes the notifier when the writer queued notifications.
    pub wake: Notify,
    /// Overdue records by owner ("" for none), as of the last check.
    overdue: Mutex<BTreeMap<String, u64>>,
}

impl TriageShared {
    /// The shared state of the `[triage]` and `[notify]` sections.
    pub fn new(config: &TriageConfig, notify: &NotifyConfig) -> Self {
        Self {
            config: config.clone(),
            notify_new: notify.webhook_url.is_some() && notify.on_new_failure,
            wake: Notify::new(),
            overdue: Mutex::new(BTreeMap::new()),
        }
    }

    /// Overdue records by owner (`None`: no owner), as of the last check.
    pub fn overdue(&self) -> Vec<(Option<String>, u64)> {
        self.overdue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(owner, &count)| ((!owner.is_empty()).then(|| owner.clone()), count))
            .collect()
    }

    /// Replaces the overdue counts by owner ("" for none) with those of a new check.
    pub fn set_overdue(&self, counts: BTreeMap<String, u64>) {
        *self.overdue.lock().unwrap_or_else(PoisonError::into_inner) = counts;
    }
}

/// The owner and SLA the rules give a record.
pub fn route(
    config: &TriageConfig,
    decision: &Decision,
    response: Option<&Response>,
) -> (Option<String>, Option<u64>) {
    let template_id = response.and_then(|response| response.template.id.as_deref());
    let data_source = response.and_then(|response| response.data_source.as_deref());
    let matched = config.rules.iter().find(|rule| {
        rule.monitor.is_none()
            && rule
                .category
                .is_none_or(|category| category == decision.category)
            && rule.stage.is_none_or(|stage| stage == decision.stage)
            && rule
                .severity
                .is_none_or(|severity| severity == decision.severity)
            && rule.matches_group(template_id, data_source)
    });
    assignment(config, matched)
}

/// The owner and SLA of the rule that matched, else the defaults.
fn assignment(
    config: &TriageConfig,
    matched: Option<&TriageRule>,
) -> (Option<String>, Option<u64>) {
    match matched {
        Some(rule) => (
            Some(rule.owner.clone()),
            rule.sla_secs.or(config.default_sla_secs),
        ),
        None => (config.default_owner.clone(), config.default_sla_secs),
    }
}

/// The owner and SLA the rules give a monitor's alert: the first rule with `monitor` whose
/// value is the alert's kind or starts its monitor key, and whose `template_id` or
/// `data_source`, when given, is the alert's group; else the defaults.
pub fn route_alert(
    config: &TriageConfig,
    alert: &closedloop_store::records::Alert,
) -> (Option<String>, Option<u64>) {
    let template_id = (alert.dimension == "template_version").then(|| {
        alert
            .value
            .rsplit_once('@')
            .map_or(alert.value.as_str(), |(id, _)| id)
    });
    let data_source = (alert.dimension == "data_source").then_some(alert.value.as_str());
    let matched = config.rules.iter().find(|rule| {
        rule.monitor
            .as_deref()
            .is_some_and(|wanted| wanted == alert.kind || alert.monitor.starts_with(wanted))
            && rule.matches_group(template_id, data_source)
    });
    assignment(config, matched)
}

/// Runs in the writer's transaction after a revision of the record `key` was upserted:
/// routes it (new, or still open, unless someone reassigned it by hand), stores the assignment, and queues the new-record
/// notification. Returns the triage fields of the revision.
pub fn after_upsert(
    w: &mut Tx<'_>,
    key: SpanRef,
    decision: &Decision,
    response: Option<&Response>,
    created: bool,
) -> Result<Assignment, StoreError> {
    let Some(state) = w.conn.triage_state(key)? else {
        return Ok(Assignment {
            owner: None,
            status: TriageStatus::Open,
            due_s: None,
        });
    };
    let mut assignment = Assignment {
        owner: state.owner,
        status: state.status,
        due_s: state.due_s,
    };
    if assignment.status == TriageStatus::Open {
        let (owner, sla) = route(&w.triage.config, decision, response);
        let due_s = sla.map(|sla| {
            state
                .created_s
                .saturating_add(sla.min(i64::MAX as u64) as i64)
        });
        // A record someone gave to an owner by hand keeps that owner and its due time.
        if (owner != assignment.owner || due_s != assignment.due_s) && !w.conn.is_reassigned(key)? {
            w.conn.set_triage_assignment(key, owner.as_deref(), due_s)?;
            assignment.owner = owner;
            assignment.due_s = due_s;
        }
    }
    if created && w.triage.notify_new {
        let payload = payload::new_failure_payload(key, decision, &assignment, response);
        w.conn
            .queue_notification(w.now_s, payload::KIND_NEW, &payload)?;
        w.effects.notifications_added += 1;
    }
    Ok(assignment)
}
