//! The triage statements, and the triage commands that change a record from outside the
//! writer thread (the CLI).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::Assignment;
use crate::direct::{self, DirectSettings};
use crate::export::span::failure_id;
use crate::records::SpanRef;
use crate::store::StoreError;
use crate::timefmt::format_rfc3339;
use crate::vocab::TriageStatus;

fn key_params(key: SpanRef) -> [Vec<u8>; 2] {
    [key.trace_id.to_vec(), key.span_id.to_vec()]
}

/// The record's triage fields and creation time.
pub(crate) fn assignment(
    conn: &Connection,
    key: SpanRef,
) -> rusqlite::Result<Option<(Assignment, i64)>> {
    let [trace_id, span_id] = key_params(key);
    conn.prepare_cached(
        "SELECT owner, triage_status, due_s, created_s FROM failures
         WHERE trace_id = ?1 AND span_id = ?2",
    )?
    .query_row(params![trace_id, span_id], |row| {
        let status: String = row.get(1)?;
        Ok((
            Assignment {
                owner: row.get(0)?,
                status: status.parse().unwrap_or(TriageStatus::Open),
                due_s: row.get(2)?,
            },
            row.get(3)?,
        ))
    })
    .optional()
}

pub(crate) fn set_assignment(
    conn: &Connection,
    key: SpanRef,
    owner: Option<&str>,
    due_s: Option<i64>,
) -> rusqlite::Result<()> {
    let [trace_id, span_id] = key_params(key);
    conn.prepare_cached(
        "UPDATE failures SET owner = ?3, due_s = ?4 WHERE trace_id = ?1 AND span_id = ?2",
    )?
    .execute(params![trace_id, span_id, owner, due_s])?;
    Ok(())
}

pub(crate) fn queue_notification(
    conn: &Connection,
    now_s: i64,
    kind: &str,
    payload: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO notifications (created_s, kind, payload) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![now_s, kind, payload])?;
    Ok(())
}

/// A queued notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) payload: String,
}

pub(crate) fn read_notifications(
    conn: &Connection,
    limit: usize,
) -> rusqlite::Result<Vec<Notification>> {
    conn.prepare_cached("SELECT id, kind, payload FROM notifications ORDER BY id LIMIT ?1")?
        .query_map([limit as i64], |row| {
            Ok(Notification {
                id: row.get(0)?,
                kind: row.get(1)?,
                payload: row.get(2)?,
            })
        })?
        .collect()
}

pub(crate) fn delete_notification(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM notifications WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// A record past its due time, not yet notified.
struct Breach {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    owner: Option<String>,
    due_s: i64,
    category: String,
    severity: String,
}

/// Statuses whose records can be overdue.
const ACTIVE: &str = "('open', 'acknowledged')";

/// One SLA check, in one transaction: the overdue records by owner, and one breach
/// notification for each overdue record not notified before (when `notify` is true; the
/// records are marked notified either way, so enabling notifications later does not flood
/// the webhook with old breaches).
pub(crate) fn check_sla(
    conn: &mut Connection,
    now_s: i64,
    notify: bool,
) -> rusqlite::Result<(BTreeMap<String, u64>, usize)> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut overdue = BTreeMap::new();
    {
        let mut statement = tx.prepare_cached(&format!(
            "SELECT coalesce(owner, ''), count(*) FROM failures
             WHERE triage_status IN {ACTIVE} AND due_s IS NOT NULL AND due_s <= ?1
             GROUP BY 1"
        ))?;
        let rows = statement.query_map([now_s], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (owner, count) = row?;
            overdue.insert(owner, count.max(0) as u64);
        }
    }
    let breaches: Vec<Breach> = tx
        .prepare_cached(&format!(
            "SELECT trace_id, span_id, owner, due_s, category, severity FROM failures
             WHERE triage_status IN {ACTIVE} AND due_s IS NOT NULL AND due_s <= ?1
               AND breach_notified = 0
             ORDER BY due_s, trace_id, span_id"
        ))?
        .query_map([now_s], |row| {
            Ok(Breach {
                trace_id: row.get(0)?,
                span_id: row.get(1)?,
                owner: row.get(2)?,
                due_s: row.get(3)?,
                category: row.get(4)?,
                severity: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut queued = 0;
    for breach in &breaches {
        if notify {
            if let Some(key) = SpanRef::from_bytes(&breach.trace_id, &breach.span_id) {
                let payload = super::notify::breach_payload(
                    key,
                    breach.owner.as_deref(),
                    breach.due_s,
                    now_s,
                    &breach.category,
                    &breach.severity,
                );
                queue_notification(&tx, now_s, super::notify::KIND_BREACH, &payload)?;
                queued += 1;
            }
        }
        tx.prepare_cached(
            "UPDATE failures SET breach_notified = 1 WHERE trace_id = ?1 AND span_id = ?2",
        )?
        .execute(params![breach.trace_id, breach.span_id])?;
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

impl From<rusqlite::Error> for TriageError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(StoreError::from(error))
    }
}

/// Parses `fr_<trace id>_<span id>`.
pub(crate) fn parse_failure_id(id: &str) -> Option<SpanRef> {
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

/// A note written with a status change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TriageNote {
    /// When, as RFC 3339.
    pub time: String,
    /// The status set.
    pub status: String,
    /// The note, if any.
    pub note: Option<String>,
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
pub fn list(path: &Path, filter: &ListFilter) -> Result<Vec<TriageItem>, TriageError> {
    let conn = direct::open(path)?;
    let mut statement = conn.prepare(
        "SELECT trace_id, span_id, category, stage, severity, revision, owner, triage_status,
            due_s, created_s, signals
         FROM failures ORDER BY due_s IS NULL, due_s, trace_id, span_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, String>(7)?,
            row.get::<_, Option<i64>>(8)?,
            row.get::<_, i64>(9)?,
            row.get::<_, String>(10)?,
        ))
    })?;
    let mut items = Vec::new();
    for row in rows {
        let (
            trace_id,
            span_id,
            category,
            stage,
            severity,
            revision,
            owner,
            status,
            due_s,
            created_s,
            signals,
        ) = row?;
        let Some(key) = SpanRef::from_bytes(&trace_id, &span_id) else {
            continue;
        };
        let active =
            status == TriageStatus::Open.as_str() || status == TriageStatus::Acknowledged.as_str();
        let overdue = active && due_s.is_some_and(|due| due <= filter.now_s);
        if filter
            .owner
            .as_ref()
            .is_some_and(|wanted| owner.as_ref() != Some(wanted))
            || filter
                .status
                .is_some_and(|wanted| wanted.as_str() != status)
            || (filter.overdue && !overdue)
        {
            continue;
        }
        items.push(TriageItem {
            id: failure_id(key),
            category,
            stage,
            severity,
            revision,
            signals: signals
                .split(',')
                .filter(|signal| !signal.is_empty())
                .map(str::to_owned)
                .collect(),
            owner,
            status,
            due_time: due_s.map(format_rfc3339),
            overdue,
            created: format_rfc3339(created_s),
            notes: notes(&conn, key)?,
        });
    }
    Ok(items)
}

fn notes(conn: &Connection, key: SpanRef) -> rusqlite::Result<Vec<TriageNote>> {
    let [trace_id, span_id] = key_params(key);
    conn.prepare_cached(
        "SELECT time_s, status, note FROM triage_notes WHERE trace_id = ?1 AND span_id = ?2
         ORDER BY id",
    )?
    .query_map(params![trace_id, span_id], |row| {
        Ok(TriageNote {
            time: format_rfc3339(row.get(0)?),
            status: row.get(1)?,
            note: row.get(2)?,
        })
    })?
    .collect()
}

/// Sets the status of the failure record `id` (`closedloop triage ack|resolve`), with an
/// optional note. The change is a new revision: written in one transaction with its
/// failure-record span queued in the export outbox (when `settings` say export is on), like
/// the writer thread's revisions, so a running receiver exports it on its next outbox pass
/// and a stopped one at its next start. Returns the new revision.
pub fn set_status(
    path: &Path,
    settings: &DirectSettings,
    id: &str,
    status: TriageStatus,
    note: Option<&str>,
) -> Result<i64, TriageError> {
    let key = parse_failure_id(id).ok_or_else(|| TriageError::BadId(id.to_owned()))?;
    let mut conn = direct::open_connection(path)?;
    let revision = direct::write(&mut conn, settings, |w| {
        let [trace_id, span_id] = key_params(key);
        let changed = w
            .conn
            .sqlite()?
            .prepare_cached(
                "UPDATE failures SET triage_status = ?3 WHERE trace_id = ?1 AND span_id = ?2",
            )?
            .execute(params![trace_id, span_id, status.as_str()])?;
        if changed == 0 {
            return Ok(None);
        }
        w.conn
            .sqlite()?
            .prepare_cached(
                "INSERT INTO triage_notes (trace_id, span_id, time_s, status, note)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![trace_id, span_id, w.now_s, status.as_str(), note])?;
        crate::join::revise(w, key).map(Some)
    })?;
    revision.ok_or_else(|| TriageError::NotFound(id.to_owned()))
}
