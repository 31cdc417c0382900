//! Pruning by time (both engines) and by size (SQLite).

use closedloop_semconv::attribute::{FailureCategory, FailureSeverity, FailureStage, TriageStatus};

use super::{count, response, span, sqlite_store};
use crate::connection::Connection;
use crate::records::{FailureRow, PruneSettings};
use crate::sqlite::size::page_bytes;
use crate::testing::both_engines;

fn prune(conn: &mut Connection, cutoff_s: i64, max_bytes: u64) -> crate::records::PruneReport {
    conn.prune(&PruneSettings {
        cutoff_s,
        max_bytes,
    })
    .unwrap()
}

pub(crate) fn prune_by_time_keeps_recent_rows(conn: &mut Connection) {
    for n in 1..=10 {
        response(conn, 1_000 + i64::from(n), n);
        let alias = crate::records::SpanRef::new(span(n).trace_id, [9; 8]).unwrap();
        conn.insert_alias(alias, span(n).span_id, 1_000 + i64::from(n))
            .unwrap();
    }
    let report = prune(conn, 1_006, u64::MAX);
    assert_eq!(count(conn, "span_aliases"), 5, "aliases go by time too");
    assert_eq!(report.responses, 5);
    assert_eq!(count(conn, "responses"), 5);
    assert_eq!(
        count(conn, "response_content"),
        5,
        "content goes with its response"
    );
    assert!(conn.response_by_span(span(10)).unwrap().is_some());
    assert!(conn.response_by_span(span(1)).unwrap().is_none());
}

/// A store a little over its limit loses only rows nothing needs: the oldest responses
/// without a record, not failure records or undelivered exports.
#[test]
fn slightly_over_the_limit_deletes_only_what_nothing_needs() {
    let conn = &mut sqlite_store();
    for n in 1..=2_000 {
        response(conn, 1_000, n);
    }
    for n in 1..=50 {
        conn.upsert_failure(&FailureRow {
            key: span(n),
            now_s: 1_000,
            category: FailureCategory::Hallucination,
            stage: FailureStage::Generation,
            severity: FailureSeverity::Medium,
            signals: "thumbs_down",
            feedback_count: 1,
            revision: 1,
            enriched: true,
            triage_status: TriageStatus::Open,
        })
        .unwrap();
        conn.insert_outbox(1_000, &[0; 64]).unwrap();
    }
    let before = page_bytes(&mut conn.db).unwrap();
    let report = prune(conn, 0, before * 97 / 100);
    assert!(report.responses > 0);
    assert!(page_bytes(&mut conn.db).unwrap() <= before * 97 / 100);
    assert_eq!(report.failures, 0, "{report:?}");
    assert_eq!(count(conn, "failures"), 50);
    assert_eq!(count(conn, "outbox"), 50);
    assert!(
        conn.response_by_span(span(1)).unwrap().is_some(),
        "a record's response stays"
    );
}

#[test]
fn prune_by_size_deletes_the_oldest_first() {
    let conn = &mut sqlite_store();
    for n in 1..=2_000 {
        response(conn, 1_000, n);
    }
    let before = page_bytes(&mut conn.db).unwrap();
    let report = prune(conn, 0, before / 2);
    assert!(report.responses > 0);
    assert!(page_bytes(&mut conn.db).unwrap() <= before / 2);
    assert!(conn.response_by_span(span(2_000)).unwrap().is_some());
    assert!(conn.response_by_span(span(1)).unwrap().is_none());
}

both_engines!(prune_by_time_keeps_recent_rows,);
