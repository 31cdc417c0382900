//! `store.max_size_mib` with the backend down: the outbox and the failure records stay
//! bounded, and the store keeps the responses its remaining records need.

mod support;

use std::path::Path;
use std::time::Duration;

use closedloop_receiver::{ExportProtocol, Pipeline};
use support::*;

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// The database file and its WAL, as the file system sees them.
fn disk_bytes(db: &Path) -> u64 {
    let wal = db.with_extension("db-wal");
    std::fs::metadata(db).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test]
async fn with_the_backend_down_the_store_stays_within_its_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("closedloop.db");
    // Nothing listens there: every export fails and the outbox only grows.
    let addr = reserve_addr().await;
    let mut config = config(
        dir.path(),
        Some((format!("http://{addr}"), ExportProtocol::Grpc)),
    );
    config.store.max_size_mib = 1;
    config.store.prune_interval_secs = 1;
    let pipeline = Pipeline::start(config).await.unwrap();

    for _ in 0..20 {
        let mut spans = Vec::new();
        for _ in 0..100 {
            let response = ids();
            spans.push(generation_span(response, &Generation::default()));
            spans.push(feedback_span(
                child(response),
                Some(response),
                "report",
                vec![],
            ));
        }
        pipeline.ingest(request(spans)).await.unwrap();
    }
    // Records are ordered by the second of their last update: the newest one gets a second
    // of its own.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let newest = ids();
    pipeline
        .ingest(request(vec![
            generation_span(newest, &Generation::default()),
            feedback_span(child(newest), Some(newest), "report", vec![]),
        ]))
        .await
        .unwrap();
    let records = pipeline.stats().failure_records;
    assert!(records >= 2_000, "{records} failure records");

    eventually(WAIT, || disk_bytes(&db) <= MIB).await;

    let mut conn = closedloop_store::Connection::inspect_sqlite_file(&db, false).unwrap();
    let mut count = |sql: &str| -> u64 { conn.inspect_int(sql, &[]).unwrap() as u64 };
    let outbox = count("SELECT count(*) FROM outbox");
    let failures = count("SELECT count(*) FROM failures");
    assert!(0 < outbox && outbox < records / 2, "{outbox} outbox rows");
    assert!(0 < failures && failures < records / 2, "{failures} records");
    assert_eq!(
        count(
            "SELECT count(*) FROM failures f WHERE NOT EXISTS (SELECT 1 FROM responses r
                WHERE r.trace_id = f.trace_id AND r.span_id = f.span_id)"
        ),
        0,
        "every remaining record keeps its response"
    );
    let (trace_id, span_id) = newest;
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM failures WHERE trace_id = x'{}' AND span_id = x'{}'",
            hex::encode(trace_id),
            hex::encode(span_id)
        )),
        1,
        "the newest record stays"
    );
    assert_eq!(
        pipeline.stats().export_pending,
        outbox,
        "pruned outbox rows leave the pending count"
    );
    pipeline.shutdown().await.unwrap();
}
