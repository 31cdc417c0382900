//! The statements of the engine path, against a real store. Each test body is a function
//! taking the [`Connection`] it runs on, so the same body can run on either engine; the
//! `#[test]` functions run them on a fresh SQLite store.

mod engine;
mod prune;

use crate::connection::Connection;
use crate::db::{values, Db};
use crate::interner::Interner;
use crate::records::{Content, Response, SpanRef};

/// A fresh, migrated, in-memory SQLite store.
pub(crate) fn sqlite_store() -> Connection {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    crate::sqlite::schema::migrate(&mut conn).unwrap();
    Connection {
        db: Db::Sqlite(conn),
        interner: Interner::default(),
    }
}

/// A span whose trace and span ids both start with `n`.
pub(crate) fn span(n: u16) -> SpanRef {
    let [high, low] = n.to_be_bytes();
    let mut trace_id = [1; 16];
    trace_id[..2].copy_from_slice(&[high, low]);
    let mut span_id = [1; 8];
    span_id[..2].copy_from_slice(&[high, low]);
    SpanRef::new(trace_id, span_id).unwrap()
}

/// Indexes a response of about 400 bytes of chunks and content under `span(n)`.
pub(crate) fn response(conn: &mut Connection, received_s: i64, n: u16) {
    let span = span(n);
    let response = Response {
        span: Some(span),
        model: Some("gpt-4o".into()),
        chunk_ids: Some(vec!["a".repeat(200)]),
        content: Content {
            output: Some("b".repeat(200)),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(conn
        .insert_response(&response, span, received_s, true)
        .unwrap());
}

/// The rows of `table`.
pub(crate) fn count(conn: &mut Connection, table: &str) -> i64 {
    conn.db
        .query_value::<i64>(&format!("SELECT count(*) FROM {table}"), values![])
        .unwrap()
        .unwrap()
}
