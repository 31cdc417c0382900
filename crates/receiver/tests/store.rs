//! The store: partial success for malformed spans, schema versioning, retention and the size
//! of an indexed response.

mod support;

use std::time::Duration;

use closedloop_receiver::{Pipeline, PipelineError};
use closedloop_semconv::attribute as attr;
use support::*;

#[tokio::test]
async fn malformed_spans_are_rejected_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    let response = ids();
    let mut bad_ids = generation_span(ids(), &Generation::default());
    bad_ids.span_id = vec![1, 2, 3];
    let unknown_signal = feedback_span(child(response), Some(response), "meh", vec![]);
    let unknown_category = feedback_span(
        child(response),
        Some(response),
        "thumbs_down",
        vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, "bad_vibes")],
    );
    let outcome = pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            bad_ids,
            unknown_signal,
            unknown_category,
            feedback_span(child(response), Some(response), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    assert_eq!(outcome.rejected_spans, 3);
    assert!(
        outcome.error_message.contains("unknown value `meh`")
            && outcome.error_message.contains("bad_vibes")
            && outcome
                .error_message
                .contains("invalid trace id or span id"),
        "{}",
        outcome.error_message
    );
    let stats = pipeline.stats();
    assert_eq!((stats.spans_accepted, stats.spans_rejected), (2, 3));
    assert_eq!(stats.feedback_recorded, 1);
    assert_eq!(stats.failure_records, 1);

    // A request with nothing wrong is a full success.
    let outcome = pipeline
        .ingest(request(vec![generation_span(
            ids(),
            &Generation::default(),
        )]))
        .await
        .unwrap();
    assert_eq!(outcome.rejected_spans, 0);
    assert!(outcome.error_message.is_empty());
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn schema_is_versioned_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    pipeline.shutdown().await.unwrap();
    let path = dir.path().join("closedloop.db");
    let mut conn = closedloop_store::Connection::inspect_sqlite_file(&path, true).unwrap();
    let version = conn.inspect_int("PRAGMA user_version", &[]).unwrap();
    assert!(version >= 2, "schema version {version}");
    let mode = conn.inspect_rows("PRAGMA journal_mode", &[], 1).unwrap();
    assert_eq!(mode[0][0].text(), Some("wal"));
    conn.inspect_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let error = Pipeline::start(config(dir.path(), None)).await.unwrap_err();
    assert!(matches!(error, PipelineError::Store(_)), "{error:?}");
}

#[tokio::test]
async fn retention_prunes_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.store.retention_secs = 1;
    config.store.prune_interval_secs = 1;
    let pipeline = Pipeline::start(config).await.unwrap();
    let response = ids();
    pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            feedback_span(child(response), Some(response), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    let path = dir.path().join("closedloop.db");
    let count = |table: &str| -> i64 {
        let mut conn = closedloop_store::Connection::inspect_sqlite_file(&path, false).unwrap();
        conn.inspect_int(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
    };
    assert_eq!(count("responses"), 1);
    assert_eq!(count("failures"), 1);
    eventually(Duration::from_secs(10), || {
        count("responses") == 0 && count("feedback") == 0 && count("failures") == 0
    })
    .await;
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_indexed_response_takes_under_400_bytes() {
    const RESPONSES: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    let used = |path: &std::path::Path| -> i64 {
        let mut conn = closedloop_store::Connection::inspect_sqlite_file(path, false).unwrap();
        let mut pragma = |name: &str| conn.inspect_int(&format!("PRAGMA {name}"), &[]).unwrap();
        let pages = pragma("page_count");
        let free = pragma("freelist_count");
        let size = pragma("page_size");
        (pages - free) * size
    };
    let path = dir.path().join("closedloop.db");
    let empty = used(&path);
    for chunk in 0..RESPONSES / 500 {
        let spans = (0..500)
            .map(|i| {
                let response_id = format!("chatcmpl-{chunk:04}{i:04}abcdefghijkl");
                let mut span = generation_span(ids(), &Generation::default());
                span.attributes
                    .push(text(attr::GEN_AI_RESPONSE_ID, &response_id));
                span.attributes.push(text(
                    attr::SESSION_ID,
                    &format!("{:032x}", rand::random::<u128>()),
                ));
                span
            })
            .collect();
        pipeline.ingest(request(spans)).await.unwrap();
    }
    pipeline.shutdown().await.unwrap();
    let per_response = (used(&path) - empty) / RESPONSES as i64;
    println!("{per_response} bytes per indexed response");
    assert!(
        per_response <= 400,
        "{per_response} bytes per indexed response"
    );
}
