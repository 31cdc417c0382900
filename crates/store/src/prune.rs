//! Pruning: by retention time on both engines, and by size on SQLite, whose file the
//! receiver must keep under `store.max_size_mib`.

use crate::connection::Connection;
use crate::db::{values, Db};
use crate::error::Result;
use crate::locks::LockKey;
use crate::records::{PruneReport, PruneSettings, SpanRef};
use crate::{sqlite, Engine};

/// Responses no failure record and no waiting feedback needs, among those below id `?1`
/// received before `?2`.
const UNNEEDED_RESPONSES: &str = "SELECT id FROM responses r WHERE r.id < ?1 AND r.received_s < ?2
    AND NOT EXISTS (SELECT 1 FROM failures f
        WHERE f.trace_id = r.trace_id AND f.span_id = r.span_id)
    AND NOT EXISTS (SELECT 1 FROM feedback w
        WHERE w.link_trace_id = r.trace_id AND w.link_span_id = r.span_id AND w.state = 0)";

/// Feedback no failure record needs and that waits for nothing, among the rows below id `?1`
/// received before `?2`.
const UNNEEDED_FEEDBACK: &str = "DELETE FROM feedback WHERE id < ?1 AND received_s < ?2
    AND state <> 0
    AND (target_trace_id IS NULL OR NOT EXISTS (SELECT 1 FROM failures f
        WHERE f.trace_id = feedback.target_trace_id AND f.span_id = feedback.target_span_id))";

/// Deletes the responses below id `bound` received before `received_before_s` that nothing
/// needs, with their content. The time is checked on each row, not only through the bound:
/// on a shared store each statement sees the rows committed when it starts, and a response
/// another receiver commits meanwhile (with any id) is new.
fn delete_responses(db: &mut Db, bound: i64, received_before_s: i64) -> Result<usize> {
    db.execute(
        &format!("DELETE FROM response_content WHERE response IN ({UNNEEDED_RESPONSES})"),
        values![bound, received_before_s],
    )?;
    Ok(db.execute(
        &format!("DELETE FROM responses WHERE id IN ({UNNEEDED_RESPONSES})"),
        values![bound, received_before_s],
    )? as usize)
}

/// Deletes the feedback below id `bound` received before `received_before_s` that nothing
/// needs (see [`delete_responses`] for why the time is checked too).
fn delete_feedback(db: &mut Db, bound: i64, received_before_s: i64) -> Result<usize> {
    Ok(db.execute(UNNEEDED_FEEDBACK, values![bound, received_before_s])? as usize)
}

/// Deletes the failure records chosen by `select` (keys, with `?1`), with the feedback and
/// the response that belong to them alone. Returns (records, feedback, responses).
///
/// With `updated_before`, a record goes only if it was still last updated before then once
/// its lock is held: on a shared store another receiver may have just joined new feedback to
/// it (a new revision, acknowledged), and that record and its feedback stay.
fn delete_failures(
    db: &mut Db,
    select: &str,
    param: i64,
    updated_before: Option<i64>,
) -> Result<(usize, usize, usize)> {
    let keys: Vec<(Vec<u8>, Vec<u8>)> =
        db.query(select, values![param], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let mut deleted = (0, 0, 0);
    for (trace_id, span_id) in keys {
        if let Some(span) = SpanRef::from_bytes(&trace_id, &span_id) {
            db.lock_keys(&mut vec![LockKey::span(&span).raw()])?;
        }
        let records = db.execute(
            "DELETE FROM failures WHERE trace_id = ?1 AND span_id = ?2 AND updated_s < ?3",
            values![&trace_id, &span_id, updated_before.unwrap_or(i64::MAX)],
        )? as usize;
        if records == 0 {
            continue;
        }
        deleted.0 += records;
        // Its history and notes go with it: a record made again later starts anew.
        for table in ["failure_revisions", "triage_notes"] {
            db.execute(
                &format!("DELETE FROM {table} WHERE trace_id = ?1 AND span_id = ?2"),
                values![&trace_id, &span_id],
            )?;
        }
        deleted.1 += db.execute(
            "DELETE FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2
                AND state <> 0",
            values![&trace_id, &span_id],
        )? as usize;
        let response = db.query_value::<i64>(
            "SELECT id FROM responses r WHERE trace_id = ?1 AND span_id = ?2
                AND NOT EXISTS (SELECT 1 FROM feedback w WHERE w.link_trace_id = r.trace_id
                    AND w.link_span_id = r.span_id AND w.state = 0)",
            values![&trace_id, &span_id],
        )?;
        if let Some(id) = response {
            db.execute(
                "DELETE FROM response_content WHERE response = ?1",
                values![id],
            )?;
            deleted.2 += db.execute("DELETE FROM responses WHERE id = ?1", values![id])? as usize;
        }
    }
    Ok(deleted)
}

/// The first id of a table whose `column` is at or after `cutoff_s` (rows are appended in
/// time order, so older rows are a prefix of the table).
fn first_kept(db: &mut Db, table: &str, column: &str, cutoff_s: i64) -> Result<i64> {
    Ok(db
        .query_value::<i64>(
            &format!("SELECT id FROM {table} WHERE {column} >= ?1 ORDER BY id LIMIT 1"),
            values![cutoff_s],
        )?
        .unwrap_or(i64::MAX))
}

/// The id below which lie the oldest `fraction` of a table's rows (at least one).
fn oldest_bound(db: &mut Db, table: &str, fraction: f64) -> Result<Option<i64>> {
    let bounds = db.query_opt(
        &format!("SELECT min(id), max(id) FROM {table}"),
        values![],
        |row| Ok((row.get::<Option<i64>>(0)?, row.get::<Option<i64>>(1)?)),
    )?;
    let Some((Some(min), Some(max))) = bounds else {
        return Ok(None);
    };
    Ok(Some(
        min + (((max - min + 1) as f64 * fraction).ceil() as i64).max(1),
    ))
}

/// Deletes what is older than the retention time. Returns the report of what it deleted.
fn prune_by_time(db: &mut Db, cutoff_s: i64) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let (failures, feedback, responses) = delete_failures(
        db,
        "SELECT trace_id, span_id FROM failures WHERE updated_s < ?1",
        cutoff_s,
        Some(cutoff_s),
    )?;
    report.failures += failures;
    report.feedback += feedback;
    report.responses += responses;
    let bound = first_kept(db, "responses", "received_s", cutoff_s)?;
    report.responses += delete_responses(db, bound, cutoff_s)?;
    let bound = first_kept(db, "feedback", "received_s", cutoff_s)?;
    report.feedback += delete_feedback(db, bound, cutoff_s)?;
    let bound = first_kept(db, "span_aliases", "received_s", cutoff_s)?;
    db.execute(
        "DELETE FROM span_aliases WHERE id < ?1 AND received_s < ?2",
        values![bound, cutoff_s],
    )?;
    report.outbox +=
        db.execute("DELETE FROM outbox WHERE created_s < ?1", values![cutoff_s])? as usize;
    Ok(report)
}

/// While the SQLite store (used pages plus WAL) is above `max_bytes`, deletes the oldest
/// tenth of one kind of row after another, measuring again after each; see
/// [`Connection::prune`].
fn prune_by_size(db: &mut Db, max_bytes: u64, report: &mut PruneReport) -> Result<()> {
    let wal = sqlite::size::wal_bytes(db);
    let pages_budget = max_bytes.saturating_sub(wal).max(max_bytes / 2);
    let over =
        |db: &mut Db| Ok::<_, crate::StoreError>(sqlite::size::page_bytes(db)? > pages_budget);
    if over(db)? {
        report.used_bytes = sqlite::size::page_bytes(db)? + wal;
    }
    // Each pass frees about a tenth; a bounded number of passes keeps one prune short.
    'passes: for _ in 0..10 {
        let mut deleted = 0;
        for step in 0..4 {
            if !over(db)? {
                report.over_size += deleted;
                break 'passes;
            }
            deleted += match step {
                0 => {
                    // Aliases go with the responses, oldest first (they are not counted: a
                    // feedback naming a span whose alias is gone resolves to its trace's
                    // last response).
                    if let Some(bound) = oldest_bound(db, "span_aliases", 0.1)? {
                        db.execute("DELETE FROM span_aliases WHERE id < ?1", values![bound])?;
                    }
                    match oldest_bound(db, "responses", 0.1)? {
                        Some(bound) => {
                            let responses = delete_responses(db, bound, i64::MAX)?;
                            report.responses += responses;
                            responses
                        }
                        None => 0,
                    }
                }
                1 => match oldest_bound(db, "feedback", 0.1)? {
                    Some(bound) => {
                        let feedback = delete_feedback(db, bound, i64::MAX)?;
                        report.feedback += feedback;
                        feedback
                    }
                    None => 0,
                },
                2 => {
                    let mut rows = 0;
                    if let Some(bound) = oldest_bound(db, "outbox", 0.1)? {
                        let outbox = db
                            .execute("DELETE FROM outbox WHERE id < ?1", values![bound])?
                            as usize;
                        report.outbox += outbox;
                        rows += outbox;
                    }
                    if let Some(bound) = oldest_bound(db, "notifications", 0.1)? {
                        let notifications = db
                            .execute("DELETE FROM notifications WHERE id < ?1", values![bound])?
                            as usize;
                        report.notifications += notifications;
                        rows += notifications;
                    }
                    rows
                }
                _ => {
                    let records = db
                        .query_value::<i64>("SELECT count(*) FROM failures", values![])?
                        .unwrap_or(0);
                    let (failures, feedback, responses) = delete_failures(
                        db,
                        "SELECT trace_id, span_id FROM failures ORDER BY updated_s LIMIT ?1",
                        ((records as f64 * 0.1).ceil() as i64).min(records),
                        None,
                    )?;
                    report.failures += failures;
                    report.feedback += feedback;
                    report.responses += responses;
                    failures + feedback + responses
                }
            };
        }
        report.over_size += deleted;
        if deleted == 0 {
            break;
        }
    }
    Ok(())
}

/// The advisory lock of pruning (PostgreSQL): "closedloop prune" as bytes.
const PRUNE_LOCK: i64 = 0x636c_7072_756e_6500;

impl Connection {
    /// Deletes what is older than the retention time (`settings.cutoff_s`): failure records
    /// not updated since, with their feedback and response; responses, feedback and outbox
    /// rows received before it that nothing newer needs; span aliases received before it.
    ///
    /// On SQLite, then, while the store (used pages plus WAL) is above `settings.max_bytes`,
    /// the oldest tenth of one kind of row after another, measuring again after each, in this
    /// order: responses that no failure record and no waiting feedback needs, with their
    /// content (and the oldest tenth of span aliases); feedback that no failure record needs;
    /// undelivered outbox rows and webhook notifications; failure records (oldest update first) with their feedback and their
    /// response. Feedback still waiting for its response is never deleted by size, nor is
    /// the response a failure record or waiting feedback needs: it goes with its record.
    /// Runs at most ten passes. The WAL is measured once, before any deletion (checkpoint it
    /// first with [`Connection::checkpoint`] when it is large): deleting rows inside this
    /// transaction cannot shrink it, so the passes aim at used pages of `max_bytes` less the
    /// WAL, and never below half of `max_bytes`, so a WAL that a reader keeps from being
    /// checkpointed cannot make a prune delete most of the store. Freed pages go back to the
    /// file system (incremental vacuum).
    ///
    /// On PostgreSQL the database's size is the server's business: it prunes by time only.
    pub fn prune(&mut self, settings: &PruneSettings) -> Result<PruneReport> {
        // Several receivers on one PostgreSQL each run the pruning task; one at a time
        // prunes, the others find the lock taken and leave it to that one.
        if !self.db.try_lock_key(PRUNE_LOCK)? {
            return Ok(PruneReport::default());
        }
        let mut report = prune_by_time(&mut self.db, settings.cutoff_s)?;
        if self.db.engine() == Engine::Sqlite {
            prune_by_size(&mut self.db, settings.max_bytes, &mut report)?;
            if report.deleted() > 0 {
                sqlite::size::incremental_vacuum(&mut self.db)?;
            }
        }
        Ok(report)
    }

    /// The size of the SQLite store's WAL file, in bytes (0 on PostgreSQL, and for a store
    /// without a WAL file).
    pub fn wal_bytes(&self) -> u64 {
        sqlite::size::wal_bytes(&self.db)
    }

    /// Copies SQLite's WAL into the database and truncates it to zero bytes, so the space it
    /// held goes back to the file system. A reader still on an older snapshot would make it
    /// wait: it waits `busy_timeout` at most, and a checkpoint a reader is in the way of is
    /// left for next time (not an error). A no-op on PostgreSQL.
    pub fn checkpoint(&mut self, busy_timeout: std::time::Duration) -> Result<()> {
        sqlite::size::checkpoint(&mut self.db, busy_timeout)
    }
}
