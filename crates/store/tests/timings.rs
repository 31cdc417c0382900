//! Measurements on SQLite stores of benchmark size; they print numbers and assert only what
//! was written. Run them in release mode:
//!
//! ```sh
//! cargo test --release -p closedloop-store --test timings -- --ignored --nocapture
//! ```

use std::time::Instant;

use closedloop_semconv::attribute::{FailureCategory, FailureSeverity, FailureStage, TriageStatus};
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::records::{Content, FailureRow, Response, ReviewStratum, SpanRef};
use closedloop_store::{Access, Connection, StoreConfig};

fn store(dir: &tempfile::TempDir) -> (Connection, std::path::PathBuf) {
    let path = dir.path().join("closedloop.db");
    let config = StoreConfig {
        path: path.clone(),
        ..StoreConfig::default()
    };
    (Connection::open(&config, Access::Writer).unwrap(), path)
}

fn mib(path: &std::path::Path) -> f64 {
    let mut bytes = std::fs::metadata(path).map_or(0, |meta| meta.len());
    bytes += std::fs::metadata(path.with_extension("db-wal")).map_or(0, |meta| meta.len());
    bytes as f64 / (1024.0 * 1024.0)
}

/// The console benchmark's store: 1M responses, 50K failure records.
#[test]
#[ignore = "a measurement, not a test"]
fn populating_the_console_benchmark_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, path) = store(&dir);
    let started = Instant::now();
    let filled = populate(&mut conn, &Spec::benchmark(1_768_500_000)).unwrap();
    let elapsed = started.elapsed();
    assert_eq!((filled.responses, filled.failures), (1_000_000, 50_000));
    println!(
        "populate: {} responses, {} failure records, {} feedback, {} review items in {:.1} s \
         ({:.0} responses/s); store {:.0} MiB",
        filled.responses,
        filled.failures,
        filled.feedback,
        filled.review_items,
        elapsed.as_secs_f64(),
        filled.responses as f64 / elapsed.as_secs_f64(),
        mib(&path),
    );
}

fn span(i: u32) -> SpanRef {
    let mut trace_id = [7u8; 16];
    trace_id[..4].copy_from_slice(&i.to_be_bytes());
    let mut span_id = [9u8; 8];
    span_id[..4].copy_from_slice(&i.to_be_bytes());
    SpanRef::new(trace_id, span_id).unwrap()
}

/// One day of 100K responses with captured content, 1% of them failed and 100 sampled: the
/// content no sample and no record needs is deleted in one statement.
#[test]
#[ignore = "a measurement, not a test"]
fn dropping_a_day_of_unneeded_content() {
    const RESPONSES: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, path) = store(&dir);
    let day_s = 20_000 * 86_400;
    let mut tx = conn.transaction().unwrap();
    for i in 0..RESPONSES {
        let key = span(i);
        let response = Response {
            span: Some(key),
            model: Some("gpt-4o".into()),
            content: Content {
                query: Some(format!("How do I reset my password? ({i})")),
                output: Some("Open Settings, then Security, then Reset password.".repeat(4)),
                ..Content::default()
            },
            ..Response::default()
        };
        tx.insert_response(&response, key, day_s + i64::from(i % 86_400), true)
            .unwrap();
        if i % 100 == 50 {
            tx.upsert_failure(&FailureRow {
                key,
                now_s: day_s,
                category: FailureCategory::Hallucination,
                stage: FailureStage::Generation,
                severity: FailureSeverity::High,
                signals: "thumbs_down",
                feedback_count: 1,
                revision: 1,
                enriched: true,
                triage_status: TriageStatus::Open,
            })
            .unwrap();
        }
        if i % 1_000 == 3 {
            tx.queue_review_item("2024-10-04", key, ReviewStratum::Uniform, day_s)
                .unwrap();
        }
    }
    tx.commit().unwrap();
    let before = mib(&path);
    let started = Instant::now();
    let mut tx = conn.transaction().unwrap();
    let deleted = tx.drop_unneeded_content(day_s, day_s + 86_400).unwrap();
    tx.commit().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        deleted,
        (RESPONSES - RESPONSES / 100 - RESPONSES / 1_000) as usize
    );
    println!(
        "drop_unneeded_content: {deleted} of {RESPONSES} content rows deleted in {:.0} ms \
         (store {before:.0} MiB before)",
        elapsed.as_secs_f64() * 1_000.0
    );
    let started = Instant::now();
    let again = conn.drop_unneeded_content(day_s, day_s + 86_400).unwrap();
    assert_eq!(again, 0);
    println!(
        "drop_unneeded_content again (nothing left to delete): {:.1} ms",
        started.elapsed().as_secs_f64() * 1_000.0
    );
}
