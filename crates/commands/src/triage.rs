//! Triage from outside the writer thread: failure records by owner and status, a status
//! change as a new revision of the record, and the SLA check the receiver's background task
//! runs. The routing itself (owner, due time) is the engine's ([`closedloop_engine::triage`]).
//!
//! A status change ([`set_status`]) is a new revision of the record, exported like the others.

use std::collections::BTreeMap;

pub use closedloop_engine::triage::{NotifyConfig, TriageConfig, TriageRule};
use closedloop_store::records::TriageRecord;
use closedloop_store::Connection;

use crate::direct::{self, DirectSettings};
use crate::export::span::failure_id;
use crate::join;
use crate::records::SpanRef;
use crate::store::StoreError;
use crate::timefmt::format_rfc3339;
use crate::vocab::TriageStatus;

/// One SLA check, in one transaction: the overdue records by owner (`""` for none), and
/// one breach notification for each overdue record not notified before (when `notify` is
/// true; the records are claimed either way, so enabling notifications later does not flood
/// the webhook with old breaches). Each breach is claimed by one check, whichever receiver
/// runs it. Returns the counts and the notifications queued.
pub fn check_sla(
    conn: &mut Connection,
    now_s: i64,
    notify: bool,
) -> Result<(BTreeMap<String, u64>, usize), StoreError> {
    let mut tx = conn.transaction()?;
    let overdue = tx
        .overdue_by_owner(now_s)?
        .into_iter()
        .map(|(owner, count)| (owner.unwrap_or_default(), count))
        .collect();
    let breaches = tx.claim_sla_breaches(now_s)?;
    let mut queued = 0;
    if notify {
        for breach in &breaches {
            let payload = closedloop_engine::triage::payload::breach_payload(
                breach.key,
                breach.owner.as_deref(),
                breach.due_s,
                now_s,
                breach.category.as_str(),
                breach.severity.as_str(),
            );
            tx.queue_notification(
                now_s,
                closedloop_engine::triage::payload::KIND_BREACH,
                &payload,
            )?;
            queued += 1;
        }
    }
    tx.commit()?;
    Ok((overdue, queued))
}

/// Why a triage command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriageError {
    /// The id is not a failure-record id (`fr_<32 hex>_<16 hex>`).
    #[error("invalid failure record id {0:?}")]
    BadId(String),
    /// No failure record has this id.
    #[error("no failure record {0}")]
    NotFound(String),
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// Parses `fr_<trace id>_<span id>`.
pub fn parse_failure_id(id: &str) -> Option<SpanRef> {
    let rest = id.strip_prefix("fr_")?;
    let (trace_id, span_id) = rest.split_once('_')?;
    let trace_id: [u8; 16] = hex::decode(trace_id).ok()?.try_into().ok()?;
    let span_id: [u8; 8] = hex::decode(span_id).ok()?.try_into().ok()?;
    SpanRef::new(trace_id, span_id)
}

/// Which records `closedloop triage list` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this owner's records.
    pub owner: Option<String>,
    /// Only records in this status.
    pub status: Option<TriageStatus>,
    /// Only open or acknowledged records past their due time (at `now_s`).
    pub overdue: bool,
    /// The time overdue is judged at, in Unix seconds.
    pub now_s: i64,
}

impl ListFilter {
    /// A filter that shows every record, judged at `now_s`.
    pub fn new(now_s: i64) -> Self {
        Self {
            now_s,
            ..Self::default()
        }
    }
}

/// A triage change of a record (a status change or a reassignment) and its note.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TriageNote {
    /// When, as RFC 3339.
    pub time: String,
    /// The status set (for a reassignment, the status the record kept).
    pub status: String,
    /// The note, if any.
    pub note: Option<String>,
    /// Who made the change, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The owner set, for a reassignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl From<closedloop_store::records::TriageNote> for TriageNote {
    fn from(note: closedloop_store::records::TriageNote) -> Self {
        Self {
            time: format_rfc3339(note.time_s),
            status: note.status.as_str().to_owned(),
            note: note.note,
            by: note.actor,
            owner: note.owner,
        }
    }
}

/// One failure record as `closedloop triage list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TriageItem {
    /// `closedloop.failure.id`.
    pub id: String,
    /// `closedloop.failure.category`.
    pub category: String,
    /// `closedloop.failure.stage`.
    pub stage: String,
    /// `closedloop.failure.severity`.
    pub severity: String,
    /// `closedloop.failure.revision`.
    pub revision: i64,
    /// `closedloop.failure.signals`: the distinct signals that contributed, in order of arrival.
    pub signals: Vec<String>,
    /// `closedloop.triage.owner`.
    pub owner: Option<String>,
    /// `closedloop.triage.status`.
    pub status: String,
    /// `closedloop.triage.due_time`.
    pub due_time: Option<String>,
    /// Whether the record is open or acknowledged and past its due time.
    pub overdue: bool,
    /// When the record was created, as RFC 3339.
    pub created: String,
    /// The notes of its status changes, oldest first.
    pub notes: Vec<TriageNote>,
}

/// The failure records matching `filter`, the most urgent first (by due time, then id).
pub fn list(conn: &mut Connection, filter: &ListFilter) -> Result<Vec<TriageItem>, TriageError> {
    let mut items = Vec::new();
    for record in conn.triage_records()? {
        let TriageRecord {
            key,
            category,
            stage,
            severity,
            revision,
            signals,
            owner,
            status,
            due_s,
            created_s,
        } = record;
        let active = matches!(status, TriageStatus::Open | TriageStatus::Acknowledged);
        let overdue = active && due_s.is_some_and(|due| due <= filter.now_s);
        if filter
            .owner
            .as_ref()
            .is_some_and(|wanted| owner.as_ref() != Some(wanted))
            || filter.status.is_some_and(|wanted| wanted != status)
            || (filter.overdue && !overdue)
        {
            continue;
        }
        let notes = conn
            .triage_notes(key)?
            .into_iter()
            .map(TriageNote::from)
            .collect();
        items.push(TriageItem {
            id: failure_id(key),
            category: category.as_str().to_owned(),
            stage: stage.as_str().to_owned(),
            severity: severity.as_str().to_owned(),
            revision,
            signals: signals
                .iter()
                .map(|signal| signal.as_str().to_owned())
                .collect(),
            owner,
            status: status.as_str().to_owned(),
            due_time: due_s.map(format_rfc3339),
            overdue,
            created: format_rfc3339(created_s),
            notes,
        });
    }
    Ok(items)
}

/// Sets the status of the failure record `id` (`closedloop triage ack|resolve`), with an
/// optional note and who made the change (`actor`). The change is a new revision: written in one transaction with its
/// failure-record span queued in the export outbox (when `settings` say export is on), like
/// the writer thread's revisions, so a running receiver exports it on its next outbox pass
/// and a stopped one at its next start. Returns the new revision.
pub fn set_status(
    conn: &mut Connection,
    settings: &DirectSettings,
    id: &str,
    status: TriageStatus,
    note: Option<&str>,
    actor: Option<&str>,
) -> Result<i64, TriageError> {
    revise(conn, settings, id, |conn, key, now_s| {
        conn.set_triage_status(key, status, now_s, note, actor)
    })
}

/// Gives the failure record `id` to `owner` (its status and due time stay), with an optional
/// note and who made the change. Like [`set_status`], the change is a new revision, exported
/// like the others. Returns the new revision.
pub fn reassign(
    conn: &mut Connection,
    settings: &DirectSettings,
    id: &str,
    owner: &str,
    note: Option<&str>,
    actor: Option<&str>,
) -> Result<i64, TriageError> {
    revise(conn, settings, id, |conn, key, now_s| {
        conn.reassign_triage(key, owner, now_s, note, actor)
    })
}

/// Applies `change` to the record `id` (it returns `false` when there is no such record) and
/// writes the new revision, in one transaction.
fn revise(
    conn: &mut Connection,
    settings: &DirectSettings,
    id: &str,
    change: impl FnOnce(&mut Connection, SpanRef, i64) -> Result<bool, StoreError>,
) -> Result<i64, TriageError> {
    let key = parse_failure_id(id).ok_or_else(|| TriageError::BadId(id.to_owned()))?;
    let revision = direct::write(conn, settings, |w| {
        // The record's lock before its row, in the order a receiver's join takes them, so
        // the two never wait for each other (several receivers on one store).
        w.conn.lock([closedloop_store::LockKey::span(&key)])?;
        if !change(w.conn, key, w.now_s)? {
            return Ok(None);
        }
        join::revise(w, key).map(Some)
    })?;
    revision.ok_or_else(|| TriageError::NotFound(id.to_owned()))
}
