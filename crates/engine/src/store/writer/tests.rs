//! The writer against real SQLite files: failed commits, and the joiner's state after them.

use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use closedloop_store::inspect::Param;
use closedloop_store::records::FeedbackState;
use closedloop_store::{Access, Connection};
use tokio::sync::oneshot;

use super::Writer;
use crate::counters::Shared;
use crate::detectors::DetectorsConfig;
use crate::join::{JoinConfig, Joiner};
use crate::records::{Content, Feedback, Response, SpanRef};
use crate::store::{Command, IngestBatch, StoreConfig, StoreError};
use crate::vocab::{FeedbackKind, FeedbackSignal, FeedbackSource};

fn span(n: u8) -> SpanRef {
    SpanRef::new([n; 16], [n; 8]).unwrap()
}

fn open(path: &Path) -> Connection {
    let config = StoreConfig {
        path: path.to_owned(),
        ..StoreConfig::default()
    };
    Connection::open(&config, Access::Writer).unwrap()
}

fn writer(conn: Connection) -> Writer {
    writer_with(conn, content_stored(), false)
}

/// The store keeps content: the size tests fill it with responses' content.
fn content_stored() -> StoreConfig {
    StoreConfig {
        store_content: true,
        ..StoreConfig::default()
    }
}

fn writer_with(conn: Connection, config: StoreConfig, export: bool) -> Writer {
    Writer::new(
        conn,
        Joiner::new(&JoinConfig::default(), &DetectorsConfig::default()),
        Arc::new(Shared {
            export_enabled: export,
            ..Shared::default()
        }),
        Arc::new(AtomicUsize::new(0)),
        config,
    )
}

fn response(n: u8) -> Response {
    sized_response(span(n), 64 * 1024)
}

fn sized_response(span: SpanRef, content_bytes: usize) -> Response {
    Response {
        span: Some(span),
        model: Some("gpt-4o".into()),
        chunk_ids: Some(vec!["chunk-1".into()]),
        content: Content {
            output: Some("x".repeat(content_bytes)),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn wide_span(n: u16) -> SpanRef {
    let [high, low] = n.to_be_bytes();
    SpanRef::new(
        [high, low, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [high, low, 1, 1, 1, 1, 1, 1],
    )
    .unwrap()
}

fn prune(writer: &mut Writer) {
    let (reply, mut answer) = oneshot::channel();
    writer.commit(&mut vec![Command::Prune { reply }]);
    answer.try_recv().unwrap().unwrap();
}

fn count(conn: &mut Connection, sql: &str) -> i64 {
    conn.inspect_int(sql, &[]).unwrap()
}

/// What the store takes on disk: the database file and its WAL.
fn disk_bytes(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(path).unwrap().len() + std::fs::metadata(wal).map_or(0, |m| m.len())
}

const MIB: u64 = 1 << 20;

fn thumbs_down(id: &str, target: SpanRef) -> Feedback {
    Feedback {
        feedback_id: id.into(),
        span: None,
        target: Some(target),
        response_id: None,
        signal: FeedbackSignal::ThumbsDown,
        kind: FeedbackKind::Explicit,
        value: Some(0.0),
        category: None,
        source: FeedbackSource::User,
        comment: None,
        session_id: None,
        user_id: None,
        time_unix_nano: 1,
    }
}

/// Commits one command and returns its answer.
fn ingest(writer: &mut Writer, responses: Vec<Response>) -> Result<(), StoreError> {
    let (reply, mut answer) = oneshot::channel();
    let batch = IngestBatch {
        responses,
        ..Default::default()
    };
    writer.commit(&mut vec![Command::Ingest { batch, reply }]);
    answer.try_recv().expect("answered after the commit")
}

fn feedback(writer: &mut Writer, feedback: Feedback) {
    let (reply, mut answer) = oneshot::channel();
    writer.commit(&mut vec![Command::Feedback { feedback, reply }]);
    answer.try_recv().unwrap().unwrap();
}

/// (state, target) of a feedback row, and the record's `enriched` flag.
fn joined(conn: &mut Connection, feedback_id: &str, key: SpanRef) -> (i64, Option<bool>) {
    let state = conn
        .inspect_int(
            "SELECT state FROM feedback WHERE feedback_id = ?1",
            &[Param::Text(feedback_id)],
        )
        .unwrap();
    let enriched = conn.failure_state(key).unwrap().map(|state| state.enriched);
    (state, enriched)
}

/// A commit fails while another connection holds the write lock (`SQLITE_BUSY`), and so would
/// any store access right after it. The feedback waiting for the response of that failed
/// batch is not forgotten: when the client sends the batch again, the response is joined to
/// it, enriched, without a restart.
#[test]
fn waiting_feedback_survives_a_commit_that_failed_on_a_locked_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut conn = open(&path);
    conn.inspect_batch("PRAGMA busy_timeout = 20").unwrap();
    let mut writer = writer(conn);
    feedback(&mut writer, thumbs_down("fb-1", span(1)));
    assert_eq!(
        joined(&mut writer.conn, "fb-1", span(1)),
        (0, None),
        "waits"
    );

    let mut other = open(&path);
    let lock = other.transaction().unwrap();
    assert!(ingest(&mut writer, vec![response(1)]).is_err());
    lock.rollback().unwrap();

    ingest(&mut writer, vec![response(1)]).unwrap();
    assert_eq!(
        joined(&mut writer.conn, "fb-1", span(1)),
        (FeedbackState::Joined as i64, Some(true)),
        "the retried response joins the waiting feedback, enriched"
    );
}

/// The same with a full disk (`SQLITE_FULL`, from `max_page_count`): after the disk
/// recovers, the retried response joins the feedback that waited for it.
#[test]
fn waiting_feedback_survives_a_commit_that_failed_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("store.db"));
    let mut writer = writer(conn);
    feedback(&mut writer, thumbs_down("fb-1", span(1)));
    let pages = count(&mut writer.conn, "PRAGMA page_count");
    writer
        .conn
        .inspect_batch(&format!("PRAGMA max_page_count = {pages}"))
        .unwrap();

    let error = ingest(&mut writer, vec![response(1)]).unwrap_err();
    assert!(error.is_disk_full(), "{error}");

    writer
        .conn
        .inspect_batch(&format!("PRAGMA max_page_count = {}", 1 << 30))
        .unwrap();
    ingest(&mut writer, vec![response(1)]).unwrap();
    assert_eq!(
        joined(&mut writer.conn, "fb-1", span(1)),
        (FeedbackState::Joined as i64, Some(true))
    );
}

/// Feedback left waiting in the store although its response is stored too (a receiver that
/// lost its waiting room, then restarted) is joined, enriched, when the writer starts, instead
/// of waiting again and expiring unenriched.
#[test]
fn waiting_feedback_whose_response_is_stored_is_joined_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open(&dir.path().join("store.db"));
    assert!(conn
        .insert_response(&response(1), span(1), 1_000, true)
        .unwrap());
    conn.insert_feedback(&thumbs_down("fb-1", span(1)), 1_000, FeedbackState::Waiting)
        .unwrap()
        .unwrap();

    let mut writer = writer(conn);
    ingest(&mut writer, Vec::new()).unwrap();
    assert_eq!(
        joined(&mut writer.conn, "fb-1", span(1)),
        (FeedbackState::Joined as i64, Some(true))
    );
    assert!(writer.joiner.next_deadline().is_none(), "nothing waits");
}

/// With the backend down, failure records and their outbox rows pile up beside responses
/// nothing needs. Over `max_size_mib`, pruning deletes from every table (outbox and records
/// included) until the store fits, and a response a remaining record needs is never deleted
/// before its record.
#[test]
fn size_limit_bounds_every_table_and_keeps_what_pending_records_need() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let config = StoreConfig {
        max_size_mib: 1,
        ..content_stored()
    };
    let mut writer = writer_with(open(&path), config, true);
    let records = 300;
    for n in 0..records {
        let judged = wide_span(n);
        let other = wide_span(10_000 + n);
        ingest(
            &mut writer,
            vec![sized_response(judged, 4096), sized_response(other, 4096)],
        )
        .unwrap();
        feedback(&mut writer, thumbs_down(&format!("fb-{n}"), judged));
    }
    let total = i64::from(records);
    assert_eq!(
        count(&mut writer.conn, "SELECT count(*) FROM failures"),
        total
    );
    assert_eq!(
        count(&mut writer.conn, "SELECT count(*) FROM outbox"),
        total
    );
    assert!(disk_bytes(&path) > 2 * MIB);

    for _ in 0..3 {
        prune(&mut writer);
    }

    assert!(
        disk_bytes(&path) <= MIB,
        "{} bytes on disk",
        disk_bytes(&path)
    );
    let failures = count(&mut writer.conn, "SELECT count(*) FROM failures");
    let outbox = count(&mut writer.conn, "SELECT count(*) FROM outbox");
    assert!(
        0 < failures && failures < total,
        "{failures} failure records"
    );
    assert!(0 < outbox && outbox < total, "{outbox} outbox rows");
    assert_eq!(
        count(
            &mut writer.conn,
            "SELECT count(*) FROM failures f WHERE NOT EXISTS (SELECT 1 FROM responses r
                WHERE r.trace_id = f.trace_id AND r.span_id = f.span_id)"
        ),
        0,
        "every remaining record keeps its response"
    );
    assert!(
        writer
            .conn
            .failure_state(wide_span(records - 1))
            .unwrap()
            .is_some(),
        "the newest record stays"
    );
}

/// A writer over a file store limited to 1 MiB, holding `responses` responses of 24 KiB.
fn one_mib_store(path: &Path, responses: u16) -> Writer {
    let config = StoreConfig {
        max_size_mib: 1,
        ..content_stored()
    };
    let mut writer = writer_with(open(path), config, false);
    for n in 0..responses {
        ingest(&mut writer, vec![sized_response(wide_span(n), 24 * 1024)]).unwrap();
    }
    writer
}

/// Grows the WAL: `rounds` commits rewriting every response's content.
fn rewrite_content(writer: &mut Writer, rounds: usize) {
    for round in 0..rounds {
        writer
            .conn
            .inspect_execute(
                "UPDATE response_content SET output = ?1",
                &[Param::Text(&format!("{round}").repeat(24 * 1024))],
            )
            .unwrap();
    }
}

/// The WAL counts against `max_size_mib`: data under the limit whose WAL has grown past it
/// (many commits rewriting the same pages) is not deleted, and the WAL is truncated.
#[test]
fn size_limit_counts_and_truncates_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut writer = one_mib_store(&path, 20);
    rewrite_content(&mut writer, 6);
    assert!(
        disk_bytes(&path) > 2 * MIB,
        "{} bytes on disk",
        disk_bytes(&path)
    );

    prune(&mut writer);

    assert!(
        disk_bytes(&path) <= MIB,
        "{} bytes on disk",
        disk_bytes(&path)
    );
    assert_eq!(
        count(&mut writer.conn, "SELECT count(*) FROM responses"),
        20,
        "the data itself fits"
    );
}

/// A WAL that a reader keeps from being checkpointed still counts, but deleting rows cannot
/// shrink it: pruning must not delete the store away trying. Data under half the limit stays
/// whole however large the WAL.
#[test]
fn a_wal_a_reader_keeps_does_not_make_pruning_empty_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut writer = one_mib_store(&path, 12);
    // A reader in a read transaction holds the WAL: no checkpoint can truncate it.
    let mut reader = Connection::inspect_sqlite_file(&path, false).unwrap();
    reader.inspect_batch("BEGIN").unwrap();
    count(&mut reader, "SELECT count(*) FROM responses");
    rewrite_content(&mut writer, 8);
    assert!(writer.conn.wal_bytes() > 2 * MIB);

    prune(&mut writer);

    assert_eq!(
        count(&mut writer.conn, "SELECT count(*) FROM responses"),
        12,
        "data under half the limit is kept whatever the WAL holds"
    );
    reader.inspect_batch("COMMIT").unwrap();
}

/// The pipeline's read connections close after the writer, and SQLite leaves the WAL in
/// place when the last connection to close is read-only: a stopped writer truncates it.
#[test]
fn a_stopped_writer_leaves_no_wal_behind_its_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let config = StoreConfig {
        path: path.clone(),
        ..StoreConfig::default()
    };
    let writer = writer(open(&path));
    let (commands, received) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || writer.run(received));
    let (reply, answer) = oneshot::channel();
    let batch = IngestBatch {
        responses: (1..=20).map(response).collect(),
        ..Default::default()
    };
    commands.send(Command::Ingest { batch, reply }).unwrap();
    answer.blocking_recv().unwrap().unwrap();
    let mut reader = Connection::open(&config, Access::Reader).unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM responses"), 20);
    let wal = path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the commit went to the WAL"
    );

    drop(commands);
    thread.join().unwrap();

    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM responses"), 20);
    drop(reader);
    let mut again = open(&path);
    assert_eq!(count(&mut again, "SELECT count(*) FROM responses"), 20);
}
