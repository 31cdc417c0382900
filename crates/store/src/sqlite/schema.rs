//! The schema and its migrations of the SQLite engine, versioned with `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the file from version `index` to `index + 1`; a file at
//! a version newer than this closedloop knows is refused rather than misread.

use rusqlite::Connection;

use crate::codec::text_key;
use crate::error::StoreError;

/// Version 1. Ids are BLOBs, repeated low-cardinality strings (template, model, data source,
/// index version, parameters) are interned in `strings`, content lives apart from the index
/// so indexed rows stay small, and enum values are stored as their attribute values.
const V1: &str = "
CREATE TABLE strings (
    id INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);

-- One row per LLM response span. `chunk_ids` is NULL when the span said nothing about its
-- context and an empty BLOB when it had none; see codec.rs for the encoding.
CREATE TABLE responses (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    received_s INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    response_id TEXT,
    template_id INTEGER,
    template_version INTEGER,
    template_hash INTEGER,
    chunk_ids BLOB,
    model INTEGER,
    provider INTEGER,
    parameters INTEGER,
    data_source INTEGER,
    index_version INTEGER,
    session_id TEXT,
    user_id TEXT,
    fingerprint TEXT
);
CREATE UNIQUE INDEX responses_span ON responses (trace_id, span_id);
CREATE INDEX responses_response_id ON responses (response_id) WHERE response_id IS NOT NULL;

-- Template text, once per hash, when a span carried it.
CREATE TABLE templates (
    hash INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);

-- Content attributes, only for responses whose span carried them.
CREATE TABLE response_content (
    response INTEGER PRIMARY KEY,
    input TEXT,
    output TEXT,
    query TEXT
);

-- state: 0 waiting for its response, 1 joined to its response, 2 recorded without its
-- response (the join window passed), 3 not negative (stored only).
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    feedback_id TEXT NOT NULL UNIQUE,
    received_s INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    span_trace_id BLOB,
    span_span_id BLOB,
    link_trace_id BLOB,
    link_span_id BLOB,
    response_id TEXT,
    target_trace_id BLOB,
    target_span_id BLOB,
    state INTEGER NOT NULL,
    signal TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    category TEXT,
    source TEXT NOT NULL,
    comment TEXT,
    session_id TEXT,
    user_id TEXT
);
CREATE INDEX feedback_target ON feedback (target_trace_id, target_span_id)
    WHERE target_trace_id IS NOT NULL;
CREATE INDEX feedback_waiting ON feedback (id) WHERE state = 0;

-- One row per failing response.
CREATE TABLE failures (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    created_s INTEGER NOT NULL,
    updated_s INTEGER NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    severity TEXT NOT NULL,
    signals TEXT NOT NULL,
    feedback_count INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    enriched INTEGER NOT NULL,
    triage_status TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX failures_updated ON failures (updated_s);

-- Encoded failure-record spans not yet acknowledged by the OTLP backend.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    created_s INTEGER NOT NULL,
    span BLOB NOT NULL
);
";

/// Version 2: the implicit-signal detectors. Responses are found by session (the previous and
/// next turn of a rephrase or regenerate), feedback by the span it links to (whether a response
/// already had feedback), and each session's last response waits in `abandon_candidates` until
/// its abandon window passes or activity in the session cancels it.
const V2: &str = "
CREATE INDEX responses_session ON responses (session_id, start_ns)
    WHERE session_id IS NOT NULL;
CREATE INDEX feedback_link ON feedback (link_trace_id, link_span_id)
    WHERE link_trace_id IS NOT NULL;

CREATE TABLE abandon_candidates (
    session_id TEXT PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    start_ns INTEGER NOT NULL,
    due_s INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX abandon_candidates_due ON abandon_candidates (due_s);
CREATE INDEX abandon_candidates_span ON abandon_candidates (trace_id, span_id);
";

/// Version 3: closing the loop. Failure records get an owner, a due time and a flag set once
/// their SLA breach was notified; status changes keep their notes; the review queue holds each
/// day's sample (with the seed that drew it) and the reviewers' labels; webhook notifications
/// wait in `notifications` until delivered.
const V3: &str = "
ALTER TABLE failures ADD COLUMN owner TEXT;
ALTER TABLE failures ADD COLUMN due_s INTEGER;
ALTER TABLE failures ADD COLUMN breach_notified INTEGER NOT NULL DEFAULT 0;
CREATE INDEX failures_due ON failures (due_s) WHERE due_s IS NOT NULL;

CREATE TABLE triage_notes (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    time_s INTEGER NOT NULL,
    status TEXT NOT NULL,
    note TEXT
);
CREATE INDEX triage_notes_record ON triage_notes (trace_id, span_id);

CREATE TABLE review_days (
    day TEXT PRIMARY KEY,
    seed INTEGER NOT NULL,
    sample_size INTEGER NOT NULL,
    implicit_share REAL NOT NULL,
    population INTEGER NOT NULL,
    created_s INTEGER NOT NULL
) WITHOUT ROWID;

-- label: NULL until labelled, then 'good' or 'bad'; feedback_id names the reviewer feedback.
CREATE TABLE review_queue (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    stratum TEXT NOT NULL,
    created_s INTEGER NOT NULL,
    label TEXT,
    labelled_s INTEGER,
    category TEXT,
    expected TEXT,
    note TEXT,
    feedback_id TEXT,
    UNIQUE (trace_id, span_id)
);
CREATE INDEX review_queue_day ON review_queue (day);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    created_s INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
";

/// Version 4: responses are found by `gen_ai.response.id` through `response_key`, a 64-bit
/// key of it (`codec::text_key`), instead of an index on the text. The text index was the
/// widest of the random-keyed indexes every indexed response is inserted into; the integer
/// index is about a third of its size. Rows indexed before this version get their key in the
/// same transaction ([`backfill_response_keys`]).
const V4: &str = "
ALTER TABLE responses ADD COLUMN response_key INTEGER;
DROP INDEX responses_response_id;
CREATE INDEX responses_response_key ON responses (response_key)
    WHERE response_key IS NOT NULL;
";

/// Idempotency ids are unique per judged response, not globally: feedback on one answer that
/// reuses another answer's `closedloop.feedback.id` (or API `idempotency_id`) is new
/// feedback, not a duplicate. The judged response is the span the feedback links to (API
/// feedback: the span its token names) or, for feedback that names no span, its
/// `gen_ai.response.id`. `feedback_id` loses its column `UNIQUE`, which SQLite can only drop
/// by rebuilding the table: the whole step is [`scope_feedback_ids_to_the_judged_response`],
/// which creates this index once the rows are in the rebuilt table.
const FEEDBACK_IDS_UNIQUE_PER_RESPONSE: &str = "
CREATE UNIQUE INDEX feedback_idempotency ON feedback (
    feedback_id,
    ifnull(link_trace_id, x''),
    ifnull(link_span_id, x''),
    CASE WHEN link_trace_id IS NULL THEN ifnull(response_id, '') ELSE '' END
);
";

/// A webhook notification being sent is leased to the receiver sending it until
/// `leased_until_s` (Unix seconds; 0: not leased), so a receiver that dies mid-delivery lets
/// the row go when the lease expires.
const NOTIFICATION_LEASES: &str = "
ALTER TABLE notifications ADD COLUMN leased_until_s INTEGER NOT NULL DEFAULT 0;
";

/// One schema step: its SQL, then the rows it rewrites (values only Rust computes).
struct Migration {
    sql: &'static str,
    backfill: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

/// Version 7. Export outbox rows get the lease the notifications have (see
/// `Connection::claim_outbox`): on a store several receivers share, the receiver sending a row
/// holds it until `leased_until_s`. SQLite has one receiver and does not use it; the column
/// keeps both engines' schemas one shape.
const OUTBOX_LEASES: &str = "
ALTER TABLE outbox ADD COLUMN leased_until_s INTEGER NOT NULL DEFAULT 0;
";

/// Version 8. Waiting feedback that names no span is found by its response id: on a store
/// several receivers share, each indexed response looks for it (see
/// `Connection::waiting_for`).
const WAITING_BY_RESPONSE_ID: &str = "
CREATE INDEX feedback_waiting_response ON feedback (response_id)
    WHERE state = 0 AND link_trace_id IS NULL;
";

/// Version 9. The people who close the loop are named: the reviewer who gave a label, and
/// who made each triage change (`actor`) and the owner it set (`owner`, for a reassignment).
const PEOPLE: &str = "
ALTER TABLE review_queue ADD COLUMN reviewer TEXT;
ALTER TABLE triage_notes ADD COLUMN actor TEXT;
ALTER TABLE triage_notes ADD COLUMN owner TEXT;
";

/// Version 10. The UTC days whose captured content no review sample and no failure record
/// needs was deleted (`store.content_retention`), so each day's is deleted once.
const CONTENT_DROPS: &str = "
CREATE TABLE content_drops (
    day TEXT PRIMARY KEY,
    dropped_s INTEGER NOT NULL,
    deleted INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 11. Every revision of a failure record is kept (`failure_revisions`: the state it
/// wrote and what caused it, the newest negative feedback or a triage note), and the console
/// lists records newest first, filtered by status, owner, category, stage or severity
/// (indexes in creation order per value; the table's key completes each entry, so a page is
/// one range of one index); the triage board reads the open and acknowledged records by due
/// time (`failures_triage`).
const REVISIONS: &str = "
CREATE TABLE failure_revisions (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    revision INTEGER NOT NULL,
    time_s INTEGER NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    severity TEXT NOT NULL,
    triage_status TEXT NOT NULL,
    owner TEXT,
    feedback_id TEXT,
    note_id INTEGER,
    PRIMARY KEY (trace_id, span_id, revision)
) WITHOUT ROWID;
CREATE INDEX failures_created ON failures (created_s, trace_id, span_id);
CREATE INDEX failures_status ON failures (triage_status, created_s);
CREATE INDEX failures_owner ON failures (owner, created_s);
CREATE INDEX failures_category ON failures (category, created_s);
CREATE INDEX failures_stage ON failures (stage, created_s);
CREATE INDEX failures_severity ON failures (severity, created_s);
CREATE INDEX failures_triage ON failures (triage_status, due_s, created_s);
";

/// Version 12. Feedback may name any span of a request (an HTTP server span, a chain span), and
/// nested LLM spans of one call are one response. A response keeps its parent span
/// (`parent_span_id`, NULL for a root span), so a nested LLM span arriving in a later request
/// finds the response it belongs to, either way round (`responses_parent`). `span_aliases` maps
/// a span that is not a response (an ancestor of one seen in the same request, or a nested LLM
/// span folded into another) to the response it resolves to, in the same trace.
const SPAN_ALIASES: &str = "
ALTER TABLE responses ADD COLUMN parent_span_id BLOB;
CREATE INDEX responses_parent ON responses (trace_id, parent_span_id)
    WHERE parent_span_id IS NOT NULL;
CREATE TABLE span_aliases (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    target_span_id BLOB NOT NULL,
    received_s INTEGER NOT NULL
);
CREATE UNIQUE INDEX span_aliases_span ON span_aliases (trace_id, span_id);
";

/// Version 13. Failure records go to several sinks (OTLP, Phoenix annotations, Langfuse
/// scores), each with its own delivery: an outbox row per revision and sink (`sink`), queued
/// for each sink named in `outbox_sinks` (see `Connection::set_outbox_sinks`). Rows written
/// before are the OTLP sink's, the only one there was.
const OUTBOX_SINKS: &str = "
ALTER TABLE outbox ADD COLUMN sink TEXT NOT NULL DEFAULT 'otlp';
CREATE INDEX outbox_sink ON outbox (sink, id);
CREATE TABLE outbox_sinks (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO outbox_sinks (name) VALUES ('otlp');
";

/// Version 14. The alerts the monitors raise: one open alert per monitor at most (the
/// partial unique index), and one row per excursion whoever fires it.
const ALERTS: &str = "
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    monitor TEXT NOT NULL,
    kind TEXT NOT NULL,
    dimension TEXT NOT NULL,
    value TEXT NOT NULL,
    direction TEXT NOT NULL,
    fired_s INTEGER NOT NULL,
    resolved_s INTEGER,
    baseline_rate REAL NOT NULL,
    observed_rate REAL NOT NULL,
    events INTEGER NOT NULL,
    trials INTEGER NOT NULL,
    statistic REAL NOT NULL,
    threshold REAL NOT NULL,
    owner TEXT,
    due_s INTEGER,
    detail TEXT,
    UNIQUE (monitor, fired_s)
);
CREATE UNIQUE INDEX alerts_open ON alerts (monitor) WHERE resolved_s IS NULL;
CREATE INDEX alerts_fired ON alerts (fired_s);
";

/// Version 15. The semantic fingerprint of a response's query (`sh512:<model>:<hex>`), which
/// the rephrase detector compares beside the lexical one.
const SEMANTIC_FINGERPRINTS: &str = "
ALTER TABLE responses ADD COLUMN semantic_fingerprint TEXT;
";

/// Version 16. Responses under a parent span are found through the trace's rows of
/// `responses_span` (a trace holds a handful of responses): the index on
/// `(trace_id, parent_span_id)` cost every indexed response one more random-keyed B-tree
/// insert, and every commit the pages it dirtied.
const PARENT_THROUGH_SPAN_INDEX: &str = "
DROP INDEX responses_parent;
";

const fn sql(sql: &'static str) -> Migration {
    Migration {
        sql,
        backfill: None,
    }
}

const MIGRATIONS: &[Migration] = &[
    sql(V1),
    sql(V2),
    sql(V3),
    Migration {
        sql: V4,
        backfill: Some(backfill_response_keys),
    },
    // The step is all table rebuild, done in Rust.
    Migration {
        sql: "",
        backfill: Some(scope_feedback_ids_to_the_judged_response),
    },
    sql(NOTIFICATION_LEASES),
    sql(OUTBOX_LEASES),
    sql(WAITING_BY_RESPONSE_ID),
    sql(PEOPLE),
    sql(CONTENT_DROPS),
    sql(REVISIONS),
    sql(SPAN_ALIASES),
    sql(OUTBOX_SINKS),
    sql(ALERTS),
    sql(SEMANTIC_FINGERPRINTS),
    sql(PARENT_THROUGH_SPAN_INDEX),
];

/// The column constraint that made idempotency ids global.
const GLOBAL_FEEDBACK_ID: &str = "feedback_id TEXT NOT NULL UNIQUE";

/// Rebuilds `feedback` without the column `UNIQUE` on `feedback_id` (SQLite's procedure for a
/// changed column: create the new table, copy the rows, drop the old, rename), then indexes
/// idempotency ids per judged response ([`FEEDBACK_IDS_UNIQUE_PER_RESPONSE`]). The new table
/// is the stored definition minus that constraint, so columns added by earlier steps are kept,
/// and every index the table had is created again.
fn scope_feedback_ids_to_the_judged_response(conn: &Connection) -> rusqlite::Result<()> {
    let table: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'feedback'",
        [],
        |row| row.get(0),
    )?;
    if !table.contains(GLOBAL_FEEDBACK_ID) {
        return conn.execute_batch(FEEDBACK_IDS_UNIQUE_PER_RESPONSE);
    }
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'feedback' AND sql IS NOT NULL",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let rebuilt = table
        .replacen("CREATE TABLE feedback", "CREATE TABLE feedback_rebuilt", 1)
        .replacen(GLOBAL_FEEDBACK_ID, "feedback_id TEXT NOT NULL", 1);
    conn.execute_batch(&rebuilt)?;
    conn.execute_batch(
        "INSERT INTO feedback_rebuilt SELECT * FROM feedback;
         DROP TABLE feedback;
         ALTER TABLE feedback_rebuilt RENAME TO feedback;",
    )?;
    for index in indexes {
        conn.execute_batch(&index)?;
    }
    conn.execute_batch(FEEDBACK_IDS_UNIQUE_PER_RESPONSE)
}

/// Gives every response indexed before version 4 its `response_key`.
fn backfill_response_keys(conn: &Connection) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT id, response_id FROM responses WHERE response_id IS NOT NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = conn.prepare("UPDATE responses SET response_key = ?2 WHERE id = ?1")?;
    for (id, response_id) in rows {
        update.execute(rusqlite::params![id, text_key(&response_id)])?;
    }
    Ok(())
}

/// The schema version this closedloop writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file to [`VERSION`], one transaction per step.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_sqlite(conn).map_err(|error| match error {
        MigrateError::TooNew { found } => StoreError::TooNew {
            found,
            supported: VERSION,
        },
        MigrateError::Sqlite(error) => StoreError::sqlite(error),
    })
}

enum MigrateError {
    TooNew { found: i64 },
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(error: rusqlite::Error) -> Self {
        MigrateError::Sqlite(error)
    }
}

fn migrate_sqlite(conn: &mut Connection) -> Result<(), MigrateError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(MigrateError::TooNew { found });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        if let Some(backfill) = migration.backfill {
            backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Connection as StoreConnection;
    use crate::db::Db;
    use crate::interner::Interner;

    fn store(conn: rusqlite::Connection) -> StoreConnection {
        StoreConnection {
            db: Db::Sqlite(conn),
            interner: Interner::default(),
        }
    }

    /// A file written by a version-3 receiver opens, and its responses are still found by
    /// `gen_ai.response.id` after the move to `response_key`.
    #[test]
    fn version_3_store_migrates_and_keeps_response_id_lookups() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..3] {
            conn.execute_batch(migration.sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO responses (trace_id, span_id, received_s, start_ns, duration_us,
                response_id)
             VALUES (?1, ?2, 0, 0, 0, 'chatcmpl-old')",
            rusqlite::params![&[1u8; 16][..], &[2u8; 8][..]],
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let key: i64 = conn
            .query_row("SELECT response_key FROM responses", [], |row| row.get(0))
            .unwrap();
        assert_eq!(key, text_key("chatcmpl-old"));
        let mut conn = store(conn);
        let found = conn.response_by_response_id("chatcmpl-old").unwrap();
        assert_eq!(
            found.and_then(|response| response.response_id).as_deref(),
            Some("chatcmpl-old")
        );
        assert!(conn
            .response_by_response_id("chatcmpl-new")
            .unwrap()
            .is_none());
    }

    fn insert(conn: &Connection, feedback_id: &str, link: Option<u8>, response_id: Option<&str>) {
        conn.execute(
            "INSERT INTO feedback (feedback_id, received_s, time_ns, link_trace_id, link_span_id,
                response_id, state, signal, kind, source)
             VALUES (?1, 0, 0, ?2, ?3, ?4, 3, 'thumbs_up', 'explicit', 'user')",
            rusqlite::params![
                feedback_id,
                link.map(|n| vec![n; 16]),
                link.map(|n| vec![n; 8]),
                response_id
            ],
        )
        .unwrap();
    }

    /// A file written by a version-4 receiver keeps its feedback and the feedback table's
    /// indexes, and from then on an idempotency id is unique per judged response only.
    #[test]
    fn version_4_store_migrates_to_idempotency_per_judged_response() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..4] {
            conn.execute_batch(migration.sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        insert(&conn, "fb-old", Some(1), None);
        assert!(conn
            .execute_batch(
                "INSERT INTO feedback (feedback_id, received_s, time_ns, link_trace_id,
                    link_span_id, state, signal, kind, source)
                 VALUES ('fb-old', 0, 0, x'02', x'02', 3, 'thumbs_up', 'explicit', 'user')"
            )
            .is_err());

        migrate(&mut conn).unwrap();

        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let kept: String = conn
            .query_row("SELECT feedback_id FROM feedback", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, "fb-old");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'feedback' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "feedback_idempotency",
                "feedback_link",
                "feedback_target",
                "feedback_waiting",
                "feedback_waiting_response"
            ]
        );

        let insert_or_ignore = |feedback_id: &str, link: Option<u8>, response_id: Option<&str>| {
            conn.execute(
                "INSERT OR IGNORE INTO feedback (feedback_id, received_s, time_ns,
                    link_trace_id, link_span_id, response_id, state, signal, kind, source)
                 VALUES (?1, 0, 0, ?2, ?3, ?4, 3, 'thumbs_up', 'explicit', 'user')",
                rusqlite::params![
                    feedback_id,
                    link.map(|n| vec![n; 16]),
                    link.map(|n| vec![n; 8]),
                    response_id
                ],
            )
            .unwrap()
        };
        // The same id on another judged span, or on a response id without a span: new.
        assert_eq!(insert_or_ignore("fb-old", Some(2), None), 1);
        assert_eq!(insert_or_ignore("fb-old", None, Some("chatcmpl-1")), 1);
        assert_eq!(insert_or_ignore("fb-old", None, Some("chatcmpl-2")), 1);
        // The same id for the same judged response: a duplicate. With a span, the response id
        // does not matter.
        assert_eq!(insert_or_ignore("fb-old", Some(1), None), 0);
        assert_eq!(insert_or_ignore("fb-old", Some(2), Some("chatcmpl-1")), 0);
        assert_eq!(insert_or_ignore("fb-old", None, Some("chatcmpl-1")), 0);
    }
}
