//! The statements of the store, as typed functions. All statements are cached prepared
//! statements (`prepare_cached`), so a group commit of many rows compiles each once.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{decode_strings, encode_strings, text_key};
use crate::records::{Feedback, Response, SpanRef, Template};
use crate::rules::NegativeItem;
use crate::vocab::{FailureCategory, FeedbackKind, FeedbackSignal};

/// The state of a feedback row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FeedbackState {
    /// Negative, waiting for its response span.
    Waiting = 0,
    /// Negative, joined to its response span.
    Joined = 1,
    /// Negative, recorded without its response span (the join window passed).
    Unjoined = 2,
    /// Not negative: stored only.
    Stored = 3,
}

/// Interns low-cardinality strings (template ids and versions, models, data sources, index
/// versions, parameter sets) into the `strings` table, caching ids in memory.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    cache: HashMap<String, i64>,
}

/// The most strings the interner caches; the cache is cleared when it grows past this.
const INTERNER_CACHE: usize = 65_536;

impl Interner {
    /// Forgets cached ids (after a rollback, they may name rows that no longer exist).
    pub(crate) fn clear(&mut self) {
        self.cache.clear();
    }

    fn id(&mut self, conn: &Connection, value: Option<&str>) -> rusqlite::Result<Option<i64>> {
        let Some(value) = value else {
            return Ok(None);
        };
        if let Some(&id) = self.cache.get(value) {
            return Ok(Some(id));
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM strings WHERE value = ?1")?
            .query_row([value], |row| row.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO strings (value) VALUES (?1)")?
                    .execute([value])?;
                conn.last_insert_rowid()
            }
        };
        if self.cache.len() >= INTERNER_CACHE {
            self.cache.clear();
        }
        self.cache.insert(value.to_owned(), id);
        Ok(Some(id))
    }
}

/// Indexes one response span; `false` when it was indexed before (an OTLP retry).
pub(crate) fn insert_response(
    conn: &Connection,
    interner: &mut Interner,
    response: &Response,
    span: SpanRef,
    received_s: i64,
    store_content: bool,
) -> rusqlite::Result<bool> {
    let template_hash = interner.id(conn, response.template.hash.as_deref())?;
    let values = (
        interner.id(conn, response.template.id.as_deref())?,
        interner.id(conn, response.template.version.as_deref())?,
        interner.id(conn, response.model.as_deref())?,
        interner.id(conn, response.provider.as_deref())?,
        interner.id(conn, response.parameters.as_deref())?,
        interner.id(conn, response.data_source.as_deref())?,
        interner.id(conn, response.index_version.as_deref())?,
    );
    let duration_us = response
        .end_unix_nano
        .saturating_sub(response.start_unix_nano)
        / 1_000;
    let inserted =
        conn.prepare_cached(
            "INSERT OR IGNORE INTO responses (trace_id, span_id, received_s, start_ns,
                duration_us, response_id, template_id, template_version, template_hash,
                chunk_ids, model, provider, parameters, data_source, index_version, session_id,
                user_id, fingerprint, response_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19)",
        )?
        .execute(params![
            &span.trace_id[..],
            &span.span_id[..],
            received_s,
            response.start_unix_nano as i64,
            duration_us as i64,
            response.response_id,
            values.0,
            values.1,
            template_hash,
            response.chunk_ids.as_deref().map(encode_strings),
            values.2,
            values.3,
            values.4,
            values.5,
            values.6,
            response.session_id,
            response.user_id,
            response.fingerprint,
            response.response_id.as_deref().map(text_key),
        ])? == 1;
    if !inserted {
        return Ok(false);
    }
    let row = conn.last_insert_rowid();
    if let (Some(hash), Some(text)) = (template_hash, &response.template.text) {
        conn.prepare_cached("INSERT OR IGNORE INTO templates (hash, text) VALUES (?1, ?2)")?
            .execute(params![hash, text])?;
    }
    if store_content && !response.content.is_empty() {
        conn.prepare_cached(
            "INSERT INTO response_content (response, input, output, query)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            row,
            response.content.input,
            response.content.output,
            response.content.query
        ])?;
    }
    Ok(true)
}

const RESPONSE_COLUMNS: &str = "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us,
        r.response_id, ti.value, tv.value, th.value, r.chunk_ids, m.value, p.value, pa.value,
        ds.value, iv.value, r.session_id, r.user_id, r.fingerprint
    FROM responses r
    LEFT JOIN strings ti ON ti.id = r.template_id
    LEFT JOIN strings tv ON tv.id = r.template_version
    LEFT JOIN strings th ON th.id = r.template_hash
    LEFT JOIN strings m ON m.id = r.model
    LEFT JOIN strings p ON p.id = r.provider
    LEFT JOIN strings pa ON pa.id = r.parameters
    LEFT JOIN strings ds ON ds.id = r.data_source
    LEFT JOIN strings iv ON iv.id = r.index_version";

fn span_ref(trace_id: Option<Vec<u8>>, span_id: Option<Vec<u8>>) -> Option<SpanRef> {
    SpanRef::from_bytes(&trace_id?, &span_id?)
}

fn response_from_row(row: &Row<'_>) -> rusqlite::Result<Response> {
    let start: i64 = row.get(2)?;
    let duration_us: i64 = row.get(3)?;
    Ok(Response {
        span: span_ref(row.get(0)?, row.get(1)?),
        start_unix_nano: start as u64,
        end_unix_nano: (start as u64).saturating_add((duration_us as u64).saturating_mul(1_000)),
        response_id: row.get(4)?,
        template: Template {
            id: row.get(5)?,
            version: row.get(6)?,
            hash: row.get(7)?,
            text: None,
        },
        chunk_ids: row
            .get::<_, Option<Vec<u8>>>(8)?
            .map(|bytes| decode_strings(&bytes)),
        model: row.get(9)?,
        provider: row.get(10)?,
        parameters: row.get(11)?,
        data_source: row.get(12)?,
        index_version: row.get(13)?,
        session_id: row.get(14)?,
        user_id: row.get(15)?,
        fingerprint: row.get(16)?,
        content: Default::default(),
    })
}

/// The indexed response span with these ids.
pub(crate) fn response_by_span(
    conn: &Connection,
    span: SpanRef,
) -> rusqlite::Result<Option<Response>> {
    conn.prepare_cached(&format!(
        "{RESPONSE_COLUMNS} WHERE r.trace_id = ?1 AND r.span_id = ?2"
    ))?
    .query_row(
        params![&span.trace_id[..], &span.span_id[..]],
        response_from_row,
    )
    .optional()
}

/// The latest indexed response span with this `gen_ai.response.id`.
pub(crate) fn response_by_response_id(
    conn: &Connection,
    response_id: &str,
) -> rusqlite::Result<Option<Response>> {
    conn.prepare_cached(&format!(
        "{RESPONSE_COLUMNS} WHERE r.response_key = ?1 AND r.response_id = ?2
            ORDER BY r.id DESC LIMIT 1"
    ))?
    .query_row(
        params![text_key(response_id), response_id],
        response_from_row,
    )
    .optional()
}

/// Stores a feedback item; `None` when its idempotency id was seen before for the same judged
/// response (the span it links to or, without one, its response id; see the schema's
/// `feedback_idempotency` index).
pub(crate) fn insert_feedback(
    conn: &Connection,
    feedback: &Feedback,
    received_s: i64,
    state: FeedbackState,
) -> rusqlite::Result<Option<i64>> {
    let inserted =
        conn.prepare_cached(
            "INSERT OR IGNORE INTO feedback (feedback_id, received_s, time_ns, span_trace_id,
                span_span_id, link_trace_id, link_span_id, response_id, state, signal, kind,
                value, category, source, comment, session_id, user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            feedback.feedback_id,
            received_s,
            feedback.time_unix_nano as i64,
            feedback.span.map(|span| span.trace_id.to_vec()),
            feedback.span.map(|span| span.span_id.to_vec()),
            feedback.target.map(|span| span.trace_id.to_vec()),
            feedback.target.map(|span| span.span_id.to_vec()),
            feedback.response_id,
            state as i64,
            feedback.signal.as_str(),
            feedback.kind.as_str(),
            feedback.value,
            feedback.category.map(|category| category.as_str()),
            feedback.source.as_str(),
            feedback.comment,
            feedback.session_id,
            feedback.user_id,
        ])? == 1;
    Ok(inserted.then(|| conn.last_insert_rowid()))
}

/// Attaches a feedback row to the failure record it belongs to.
pub(crate) fn set_feedback_target(
    conn: &Connection,
    row: i64,
    target: SpanRef,
    state: FeedbackState,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE feedback SET target_trace_id = ?2, target_span_id = ?3, state = ?4 WHERE id = ?1",
    )?
    .execute(params![
        row,
        &target.trace_id[..],
        &target.span_id[..],
        state as i64
    ])?;
    Ok(())
}

/// Changes a feedback row's state only.
pub(crate) fn set_feedback_state(
    conn: &Connection,
    row: i64,
    state: FeedbackState,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE feedback SET state = ?2 WHERE id = ?1")?
        .execute(params![row, state as i64])?;
    Ok(())
}

/// A feedback row waiting for its response span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WaitingRow {
    pub(crate) row: i64,
    pub(crate) received_s: i64,
    pub(crate) span: Option<SpanRef>,
    pub(crate) link: Option<SpanRef>,
    pub(crate) response_id: Option<String>,
}

/// Every feedback row still waiting, oldest first (to rebuild the joiner after a restart).
pub(crate) fn waiting_feedback(conn: &Connection) -> rusqlite::Result<Vec<WaitingRow>> {
    conn.prepare_cached(
        "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
            response_id
         FROM feedback WHERE state = 0 ORDER BY id",
    )?
    .query_map([], |row| {
        Ok(WaitingRow {
            row: row.get(0)?,
            received_s: row.get(1)?,
            span: span_ref(row.get(2)?, row.get(3)?),
            link: span_ref(row.get(4)?, row.get(5)?),
            response_id: row.get(6)?,
        })
    })?
    .collect()
}

/// One negative feedback item of a failure record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NegativeRow {
    pub(crate) item: NegativeItem,
    /// The feedback span, when the feedback came as one.
    pub(crate) span: Option<SpanRef>,
    pub(crate) time_ns: i64,
}

/// The negative feedback of the failure record keyed by `key`, oldest first.
pub(crate) fn negatives(conn: &Connection, key: SpanRef) -> rusqlite::Result<Vec<NegativeRow>> {
    conn.prepare_cached(
        "SELECT signal, kind, category, span_trace_id, span_span_id, time_ns FROM feedback
         WHERE target_trace_id = ?1 AND target_span_id = ?2 AND state IN (1, 2)
         ORDER BY id",
    )?
    .query_map(params![&key.trace_id[..], &key.span_id[..]], |row| {
        let signal: String = row.get(0)?;
        let kind: String = row.get(1)?;
        let category: Option<String> = row.get(2)?;
        Ok((
            signal.parse::<FeedbackSignal>().ok(),
            kind.parse::<FeedbackKind>()
                .unwrap_or(FeedbackKind::Explicit),
            category.and_then(|category| category.parse::<FailureCategory>().ok()),
            span_ref(row.get(3)?, row.get(4)?),
            row.get::<_, i64>(5)?,
        ))
    })?
    .filter_map(|row| match row {
        // A signal this receiver does not know (written by a newer one) is skipped.
        Ok((Some(signal), kind, category, span, time_ns)) => Some(Ok(NegativeRow {
            item: NegativeItem {
                signal,
                kind,
                category,
            },
            span,
            time_ns,
        })),
        Ok((None, ..)) => None,
        Err(error) => Some(Err(error)),
    })
    .collect()
}

/// The stored state of a failure record that matters for its next revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FailureState {
    pub(crate) revision: i64,
    pub(crate) enriched: bool,
}

pub(crate) fn failure_state(
    conn: &Connection,
    key: SpanRef,
) -> rusqlite::Result<Option<FailureState>> {
    conn.prepare_cached(
        "SELECT revision, enriched FROM failures WHERE trace_id = ?1 AND span_id = ?2",
    )?
    .query_row(params![&key.trace_id[..], &key.span_id[..]], |row| {
        Ok(FailureState {
            revision: row.get(0)?,
            enriched: row.get(1)?,
        })
    })
    .optional()
}

/// The stored fields of one failure record revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FailureRow<'a> {
    pub(crate) key: SpanRef,
    pub(crate) now_s: i64,
    pub(crate) category: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) severity: &'a str,
    pub(crate) signals: &'a str,
    pub(crate) feedback_count: i64,
    pub(crate) revision: i64,
    pub(crate) enriched: bool,
    pub(crate) triage_status: &'a str,
}

pub(crate) fn upsert_failure(conn: &Connection, row: &FailureRow<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO failures (trace_id, span_id, created_s, updated_s, category, stage,
            severity, signals, feedback_count, revision, enriched, triage_status)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (trace_id, span_id) DO UPDATE SET updated_s = excluded.updated_s,
            category = excluded.category, stage = excluded.stage,
            severity = excluded.severity, signals = excluded.signals,
            feedback_count = excluded.feedback_count, revision = excluded.revision,
            enriched = excluded.enriched",
    )?
    .execute(params![
        &row.key.trace_id[..],
        &row.key.span_id[..],
        row.now_s,
        row.category,
        row.stage,
        row.severity,
        row.signals,
        row.feedback_count,
        row.revision,
        row.enriched,
        row.triage_status,
    ])?;
    Ok(())
}

pub(crate) fn insert_outbox(conn: &Connection, now_s: i64, span: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO outbox (created_s, span) VALUES (?1, ?2)")?
        .execute(params![now_s, span])?;
    Ok(())
}

/// Deletes delivered rows; returns how many existed.
pub(crate) fn delete_outbox(conn: &Connection, ids: &[i64]) -> rusqlite::Result<usize> {
    let mut statement = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
    let mut deleted = 0;
    for id in ids {
        deleted += statement.execute([id])?;
    }
    Ok(deleted)
}

pub(crate) fn outbox_len(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("SELECT count(*) FROM outbox", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|count| count as usize)
}

/// An encoded failure-record span waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) span: Vec<u8>,
}

/// The oldest outbox rows after `after_id`.
pub(crate) fn read_outbox(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<OutboxRow>> {
    conn.prepare_cached("SELECT id, span FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![after_id, limit as i64], |row| {
            Ok(OutboxRow {
                id: row.get(0)?,
                span: row.get(1)?,
            })
        })?
        .collect()
}

/// What one pruning run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PruneReport {
    pub(crate) responses: usize,
    pub(crate) feedback: usize,
    pub(crate) failures: usize,
    pub(crate) outbox: usize,
    /// Webhook notifications not yet delivered.
    pub(crate) notifications: usize,
    /// The rows of the above deleted because the store was over its size limit (the rest
    /// were past the retention time).
    pub(crate) over_size: usize,
    /// The store's size (used pages plus the WAL) before the size passes, in bytes, when
    /// it was over the limit (0 otherwise).
    pub(crate) used_bytes: u64,
}

/// Responses no failure record and no waiting feedback needs, among `scope`.
const UNNEEDED_RESPONSES: &str = "SELECT id FROM responses r WHERE {scope}
    AND NOT EXISTS (SELECT 1 FROM failures f
        WHERE f.trace_id = r.trace_id AND f.span_id = r.span_id)
    AND NOT EXISTS (SELECT 1 FROM feedback w
        WHERE w.link_trace_id = r.trace_id AND w.link_span_id = r.span_id AND w.state = 0)";

/// Feedback no failure record needs and that waits for nothing, among `scope`.
const UNNEEDED_FEEDBACK: &str = "DELETE FROM feedback WHERE {scope} AND state <> 0
    AND (target_trace_id IS NULL OR NOT EXISTS (SELECT 1 FROM failures f
        WHERE f.trace_id = feedback.target_trace_id AND f.span_id = feedback.target_span_id))";

/// Deletes the responses of `scope` (a condition on `r`, with `?1`) that nothing needs, with
/// their content.
fn delete_responses(conn: &Connection, scope: &str, bound: i64) -> rusqlite::Result<usize> {
    let select = UNNEEDED_RESPONSES.replace("{scope}", scope);
    conn.prepare_cached(&format!(
        "DELETE FROM response_content WHERE response IN ({select})"
    ))?
    .execute([bound])?;
    conn.prepare_cached(&format!("DELETE FROM responses WHERE id IN ({select})"))?
        .execute([bound])
}

fn delete_feedback(conn: &Connection, scope: &str, bound: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(&UNNEEDED_FEEDBACK.replace("{scope}", scope))?
        .execute([bound])
}

/// Deletes the failure records chosen by `select` (keys, with `?1`), with the feedback and
/// the response that belong to them alone. Returns (records, feedback, responses).
fn delete_failures(
    conn: &Connection,
    select: &str,
    param: i64,
) -> rusqlite::Result<(usize, usize, usize)> {
    let keys: Vec<(Vec<u8>, Vec<u8>)> = conn
        .prepare_cached(select)?
        .query_map([param], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut deleted = (0, 0, 0);
    for (trace_id, span_id) in keys {
        deleted.0 += conn
            .prepare_cached("DELETE FROM failures WHERE trace_id = ?1 AND span_id = ?2")?
            .execute(params![trace_id, span_id])?;
        deleted.1 += conn
            .prepare_cached(
                "DELETE FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2
                    AND state <> 0",
            )?
            .execute(params![trace_id, span_id])?;
        let response: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM responses r WHERE trace_id = ?1 AND span_id = ?2
                    AND NOT EXISTS (SELECT 1 FROM feedback w WHERE w.link_trace_id = r.trace_id
                        AND w.link_span_id = r.span_id AND w.state = 0)",
            )?
            .query_row(params![trace_id, span_id], |row| row.get(0))
            .optional()?;
        if let Some(id) = response {
            conn.prepare_cached("DELETE FROM response_content WHERE response = ?1")?
                .execute([id])?;
            deleted.2 += conn
                .prepare_cached("DELETE FROM responses WHERE id = ?1")?
                .execute([id])?;
        }
    }
    Ok(deleted)
}

/// The first row id of a rowid table whose `column` is at or after `cutoff_s` (rows are
/// appended in time order, so older rows are a prefix of the table).
fn first_kept(
    conn: &Connection,
    table: &str,
    column: &str,
    cutoff_s: i64,
) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT id FROM {table} WHERE {column} >= ?1 ORDER BY id LIMIT 1"
        ))?
        .query_row([cutoff_s], |row| row.get(0))
        .optional()?
        .unwrap_or(i64::MAX))
}

/// The row id below which lie the oldest `fraction` of a rowid table's rows (at least one).
fn oldest_bound(conn: &Connection, table: &str, fraction: f64) -> rusqlite::Result<Option<i64>> {
    let (min, max): (Option<i64>, Option<i64>) = conn.query_row(
        &format!("SELECT min(id), max(id) FROM {table}"),
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let (Some(min), Some(max)) = (min, max) else {
        return Ok(None);
    };
    Ok(Some(
        min + (((max - min + 1) as f64 * fraction).ceil() as i64).max(1),
    ))
}

/// The bytes of the database's used pages (free pages excluded): what deleting rows shrinks.
/// The store's size is this plus [`wal_bytes`].
fn page_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The size of the connection's WAL file (0 for an in-memory database or no WAL).
pub(crate) fn wal_bytes(conn: &Connection) -> u64 {
    conn.path()
        .filter(|path| !path.is_empty())
        .and_then(|path| std::fs::metadata(format!("{path}-wal")).ok())
        .map_or(0, |metadata| metadata.len())
}

/// Deletes what is older than the retention time, then, while the store (used pages plus
/// WAL) is above `max_bytes`, the oldest tenth of one kind of row after another, measuring
/// again after each, in this order: responses that no failure record and no waiting feedback
/// needs, with their content; feedback that no failure record needs; undelivered outbox rows
/// and webhook notifications; failure records (oldest update first) with their feedback and
/// their response. Feedback still waiting for its response is never deleted by size, nor is
/// the response a failure record or waiting feedback needs: it goes with its record. Runs at
/// most ten passes.
///
/// The WAL is measured once, before any deletion (the writer checkpoints it first when it is
/// large): deleting rows inside this transaction cannot shrink it, so the passes aim at used
/// pages of `max_bytes` less the WAL, and never below half of `max_bytes`, so a WAL that a
/// reader keeps from being checkpointed cannot make a prune delete most of the store.
pub(crate) fn prune(
    conn: &Connection,
    cutoff_s: i64,
    max_bytes: u64,
) -> rusqlite::Result<PruneReport> {
    let mut report = PruneReport::default();
    let (failures, feedback, responses) = delete_failures(
        conn,
        "SELECT trace_id, span_id FROM failures WHERE updated_s < ?1",
        cutoff_s,
    )?;
    report.failures += failures;
    report.feedback += feedback;
    report.responses += responses;
    report.responses += delete_responses(
        conn,
        "r.id < ?1",
        first_kept(conn, "responses", "received_s", cutoff_s)?,
    )?;
    report.feedback += delete_feedback(
        conn,
        "id < ?1",
        first_kept(conn, "feedback", "received_s", cutoff_s)?,
    )?;
    report.outbox += conn
        .prepare_cached("DELETE FROM outbox WHERE created_s < ?1")?
        .execute([cutoff_s])?;

    let wal = wal_bytes(conn);
    let pages_budget = max_bytes.saturating_sub(wal).max(max_bytes / 2);
    let over = |conn: &Connection| Ok::<_, rusqlite::Error>(page_bytes(conn)? > pages_budget);
    if over(conn)? {
        report.used_bytes = page_bytes(conn)? + wal;
    }
    // Each pass frees about a tenth; a bounded number of passes keeps one prune short.
    'passes: for _ in 0..10 {
        let mut deleted = 0;
        for step in 0..4 {
            if !over(conn)? {
                report.over_size += deleted;
                break 'passes;
            }
            deleted += match step {
                0 => match oldest_bound(conn, "responses", 0.1)? {
                    Some(bound) => {
                        let responses = delete_responses(conn, "r.id < ?1", bound)?;
                        report.responses += responses;
                        responses
                    }
                    None => 0,
                },
                1 => match oldest_bound(conn, "feedback", 0.1)? {
                    Some(bound) => {
                        let feedback = delete_feedback(conn, "id < ?1", bound)?;
                        report.feedback += feedback;
                        feedback
                    }
                    None => 0,
                },
                2 => {
                    let mut rows = 0;
                    if let Some(bound) = oldest_bound(conn, "outbox", 0.1)? {
                        let outbox = conn
                            .prepare_cached("DELETE FROM outbox WHERE id < ?1")?
                            .execute([bound])?;
                        report.outbox += outbox;
                        rows += outbox;
                    }
                    if let Some(bound) = oldest_bound(conn, "notifications", 0.1)? {
                        let notifications = conn
                            .prepare_cached("DELETE FROM notifications WHERE id < ?1")?
                            .execute([bound])?;
                        report.notifications += notifications;
                        rows += notifications;
                    }
                    rows
                }
                _ => {
                    let records: i64 =
                        conn.query_row("SELECT count(*) FROM failures", [], |row| row.get(0))?;
                    let (failures, feedback, responses) = delete_failures(
                        conn,
                        "SELECT trace_id, span_id FROM failures ORDER BY updated_s LIMIT ?1",
                        ((records as f64 * 0.1).ceil() as i64).min(records),
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
    if report.deleted() > 0 {
        // Each step of `incremental_vacuum` frees one page: step it to the end (a single
        // `execute` would free one page only).
        let mut vacuum = conn.prepare_cached("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(report)
}

impl PruneReport {
    /// The rows deleted, of every kind.
    pub(crate) fn deleted(&self) -> usize {
        self.responses + self.feedback + self.failures + self.outbox + self.notifications
    }
}

/// Copies the WAL into the database and truncates it to zero bytes, so the space it held
/// goes back to the file system. Best effort: a reader in the way leaves it for next time.
pub(crate) fn truncate_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }

    fn span(n: u16) -> SpanRef {
        let [high, low] = n.to_be_bytes();
        let mut trace_id = [1; 16];
        trace_id[..2].copy_from_slice(&[high, low]);
        let mut span_id = [1; 8];
        span_id[..2].copy_from_slice(&[high, low]);
        SpanRef::new(trace_id, span_id).unwrap()
    }

    fn response(conn: &Connection, interner: &mut Interner, received_s: i64, n: u16) {
        let span = span(n);
        let response = Response {
            span: Some(span),
            model: Some("gpt-4o".into()),
            chunk_ids: Some(vec!["a".repeat(200)]),
            content: crate::records::Content {
                output: Some("b".repeat(200)),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(insert_response(conn, interner, &response, span, received_s, true).unwrap());
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    #[test]
    fn prune_by_time_keeps_recent_rows() {
        let conn = store();
        let mut interner = Interner::default();
        for n in 1..=10 {
            response(&conn, &mut interner, 1_000 + i64::from(n), n);
        }
        let report = prune(&conn, 1_006, u64::MAX).unwrap();
        assert_eq!(report.responses, 5);
        assert_eq!(count(&conn, "responses"), 5);
        assert_eq!(
            count(&conn, "response_content"),
            5,
            "content goes with its response"
        );
        assert!(response_by_span(&conn, span(10)).unwrap().is_some());
        assert!(response_by_span(&conn, span(1)).unwrap().is_none());
    }

    /// A store a little over its limit loses only rows nothing needs: the oldest responses
    /// without a record, not failure records or undelivered exports.
    #[test]
    fn slightly_over_the_limit_deletes_only_what_nothing_needs() {
        let conn = store();
        let mut interner = Interner::default();
        for n in 1..=2_000 {
            response(&conn, &mut interner, 1_000, n);
        }
        for n in 1..=50 {
            upsert_failure(
                &conn,
                &FailureRow {
                    key: span(n),
                    now_s: 1_000,
                    category: "hallucination",
                    stage: "generation",
                    severity: "medium",
                    signals: "thumbs_down",
                    feedback_count: 1,
                    revision: 1,
                    enriched: true,
                    triage_status: "open",
                },
            )
            .unwrap();
            insert_outbox(&conn, 1_000, &[0; 64]).unwrap();
        }
        let before = page_bytes(&conn).unwrap();
        let report = prune(&conn, 0, before * 97 / 100).unwrap();
        assert!(report.responses > 0);
        assert!(page_bytes(&conn).unwrap() <= before * 97 / 100);
        assert_eq!(report.failures, 0, "{report:?}");
        assert_eq!(count(&conn, "failures"), 50);
        assert_eq!(count(&conn, "outbox"), 50);
        assert!(
            response_by_span(&conn, span(1)).unwrap().is_some(),
            "a record's response stays"
        );
    }

    #[test]
    fn prune_by_size_deletes_the_oldest_first() {
        let conn = store();
        let mut interner = Interner::default();
        for n in 1..=2_000 {
            response(&conn, &mut interner, 1_000, n);
        }
        let before = page_bytes(&conn).unwrap();
        let report = prune(&conn, 0, before / 2).unwrap();
        assert!(report.responses > 0);
        assert!(page_bytes(&conn).unwrap() <= before / 2);
        assert!(response_by_span(&conn, span(2_000)).unwrap().is_some());
        assert!(response_by_span(&conn, span(1)).unwrap().is_none());
    }
}
