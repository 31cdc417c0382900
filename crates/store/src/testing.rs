//! Fixtures of the store's tests: a store on each engine, and rows written the way the
//! receiver writes them.

use crate::db::values;
use crate::records::SpanRef;
use crate::{Access, Connection, StoreConfig};

/// Runs `test` on a new SQLite store in a temporary directory.
pub(crate) fn on_sqlite(test: impl FnOnce(&mut Connection)) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().join("closedloop.db"),
        ..StoreConfig::default()
    };
    let mut conn = Connection::open(&config, Access::Writer).unwrap();
    test(&mut conn);
}

/// A distinct valid span for each `n`.
pub(crate) fn key(n: u8) -> SpanRef {
    SpanRef::new([n; 16], [n; 8]).unwrap()
}

/// A failure record's row.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) key: SpanRef,
    pub(crate) created_s: i64,
    pub(crate) category: &'static str,
    pub(crate) stage: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) signals: &'static str,
    pub(crate) revision: i64,
    pub(crate) triage_status: &'static str,
    pub(crate) owner: Option<&'static str>,
    pub(crate) due_s: Option<i64>,
}

impl Failure {
    pub(crate) fn new(key: SpanRef, created_s: i64) -> Self {
        Self {
            key,
            created_s,
            category: "other",
            stage: "unknown",
            severity: "medium",
            signals: "thumbs_down",
            revision: 1,
            triage_status: "open",
            owner: None,
            due_s: None,
        }
    }
}

pub(crate) fn insert_failure(conn: &mut Connection, failure: &Failure) {
    conn.db
        .execute(
            "INSERT INTO failures (trace_id, span_id, created_s, updated_s, category, stage,
                severity, signals, feedback_count, revision, enriched, triage_status, owner,
                due_s, breach_notified)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, 1, ?8, 1, ?9, ?10, ?11, 0)",
            values![
                &failure.key.trace_id,
                &failure.key.span_id,
                failure.created_s,
                failure.category,
                failure.stage,
                failure.severity,
                failure.signals,
                failure.revision,
                failure.triage_status,
                failure.owner,
                failure.due_s,
            ],
        )
        .unwrap();
}

/// An indexed response's row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Response {
    pub(crate) received_s: i64,
    pub(crate) template_id: Option<&'static str>,
    pub(crate) template_version: Option<&'static str>,
    pub(crate) model: Option<&'static str>,
    pub(crate) data_source: Option<&'static str>,
    pub(crate) chunk_ids: Option<Vec<String>>,
    pub(crate) fingerprint: Option<&'static str>,
    pub(crate) query: Option<&'static str>,
    pub(crate) output: Option<&'static str>,
}

/// Inserts the response of `key`; its row id.
pub(crate) fn insert_response(conn: &mut Connection, key: SpanRef, response: &Response) -> i64 {
    let mut ids = Vec::new();
    for value in [
        response.template_id,
        response.template_version,
        response.model,
        response.data_source,
    ] {
        ids.push(conn.interner.id(&mut conn.db, value).unwrap());
    }
    let chunk_ids = response
        .chunk_ids
        .as_deref()
        .map(crate::codec::encode_strings);
    let id = conn
        .db
        .query_value::<i64>(
            "INSERT INTO responses (trace_id, span_id, received_s, start_ns, duration_us,
                template_id, template_version, model, data_source, chunk_ids, fingerprint)
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            values![
                &key.trace_id,
                &key.span_id,
                response.received_s,
                ids[0],
                ids[1],
                ids[2],
                ids[3],
                chunk_ids.as_ref(),
                response.fingerprint,
            ],
        )
        .unwrap()
        .unwrap();
    if response.query.is_some() || response.output.is_some() {
        conn.db
            .execute(
                "INSERT INTO response_content (response, query, output) VALUES (?1, ?2, ?3)",
                values![id, response.query, response.output],
            )
            .unwrap();
    }
    id
}

/// Inserts feedback on `target` (`state` as in the schema: 0 waiting, 1 joined, 2 recorded
/// without its response, 3 not negative).
pub(crate) fn insert_feedback(
    conn: &mut Connection,
    feedback_id: &str,
    target: SpanRef,
    kind: &str,
    signal: &str,
    state: i64,
    received_s: i64,
) {
    conn.db
        .execute(
            "INSERT INTO feedback (feedback_id, received_s, time_ns, target_trace_id,
                target_span_id, link_trace_id, link_span_id, state, signal, kind, source)
             VALUES (?1, ?2, 0, ?3, ?4, ?3, ?4, ?5, ?6, ?7, 'user')",
            values![
                feedback_id,
                received_s,
                &target.trace_id,
                &target.span_id,
                state,
                signal,
                kind,
            ],
        )
        .unwrap();
}

/// Runs `test` on two connections to a fresh schema of the PostgreSQL database that
/// `CLOSEDLOOP_TEST_POSTGRES_URL` names (as `scripts/postgres.sh` starts it): two receivers
/// on one store. Without the variable the test is skipped, unless
/// `CLOSEDLOOP_TEST_REQUIRE_POSTGRES` is set.
pub(crate) fn on_postgres_pair(test: impl FnOnce(&mut Connection, &mut Connection)) {
    let Some(config) = postgres_schema() else {
        return;
    };
    let mut first = Connection::open(&config, Access::Writer).unwrap();
    let mut second = Connection::open(&config, Access::Writer).unwrap();
    test(&mut first, &mut second);
}

/// Runs `test` on a fresh schema of the PostgreSQL test database (see [`on_postgres_pair`]).
pub(crate) fn on_postgres(test: impl FnOnce(&mut Connection)) {
    let Some(config) = postgres_schema() else {
        return;
    };
    test(&mut Connection::open(&config, Access::Writer).unwrap());
}

/// Store settings naming a new, empty schema of the test database.
fn postgres_schema() -> Option<StoreConfig> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SCHEMAS: AtomicU64 = AtomicU64::new(0);
    let Ok(url) = std::env::var("CLOSEDLOOP_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CLOSEDLOOP_TEST_REQUIRE_POSTGRES").is_none(),
            "CLOSEDLOOP_TEST_REQUIRE_POSTGRES is set but CLOSEDLOOP_TEST_POSTGRES_URL is not"
        );
        return None;
    };
    let schema = format!(
        "test_{}_{}",
        std::process::id(),
        SCHEMAS.fetch_add(1, Ordering::Relaxed)
    );
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(crate::StoreUrl::new(format!(
            "{url}{separator}options=-csearch_path%3D{schema}"
        ))),
        ..StoreConfig::default()
    })
}
