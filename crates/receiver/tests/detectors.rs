//! The implicit-signal detectors through the real pipeline: synthetic sessions of response
//! spans (query fingerprints as closedloop-tracing writes them, query text only where a test
//! says so), failure records checked on a real OTLP sink and feedback rows in the store.

mod support;

use std::path::Path;
use std::time::Duration;

use closedloop_receiver::{
    AbandonDetectorConfig, DetectorsConfig, EditDetectorConfig, FeedbackInput, FeedbackSignal,
    FeedbackSource, Pipeline, PipelineConfig,
};
use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const MINUTE_NS: u64 = 60_000_000_000;

/// A generation span of `session` for `query`, started `minute` minutes into the session:
/// fingerprint always, query text only when `with_text`.
fn turn(ids: Ids, session: &'static str, query: &str, minute: u64, with_text: bool) -> Span {
    let mut span = generation_span(
        ids,
        &Generation {
            session_id: session,
            ..Generation::default()
        },
    );
    let start = 1_800_000_000_000_000_000 + minute * MINUTE_NS;
    span.start_time_unix_nano = start;
    span.end_time_unix_nano = start + 2_000_000_000;
    for kv in &mut span.attributes {
        if kv.key == attr::CLOSEDLOOP_QUERY_FINGERPRINT {
            kv.value = Some(AnyValue {
                value: Some(Value::StringValue(
                    closedloop_tracing::fingerprint(query).to_string(),
                )),
            });
        }
    }
    if with_text {
        span.attributes
            .push(text(attr::CLOSEDLOOP_QUERY_TEXT, query));
    }
    span
}

/// Content is stored: some tests send query text.
fn with_detectors(dir: &Path, sink: &Sink, detectors: DetectorsConfig) -> PipelineConfig {
    let mut config = PipelineConfig {
        detectors,
        ..config(dir, Some(sink.endpoint()))
    };
    config.store.store_content = true;
    config
}

fn abandon_on() -> DetectorsConfig {
    DetectorsConfig {
        abandon: AbandonDetectorConfig {
            enabled: true,
            window_secs: 1,
            check_interval_secs: 1,
        },
        ..Default::default()
    }
}

/// A stored feedback row: (feedback id, signal, kind, source, target span id).
type FeedbackRow = (String, String, String, String, Option<Vec<u8>>);

/// The stored feedback, oldest first.
fn feedback_rows(dir: &Path) -> Vec<FeedbackRow> {
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.join("closedloop.db"), false)
            .unwrap();
    let text = |cell: &closedloop_store::inspect::Cell| cell.text().unwrap().to_owned();
    conn.inspect_rows(
        "SELECT feedback_id, signal, kind, source, target_span_id FROM feedback ORDER BY id",
        &[],
        5,
    )
    .unwrap()
    .iter()
    .map(|row| {
        (
            text(&row[0]),
            text(&row[1]),
            text(&row[2]),
            text(&row[3]),
            row[4].blob().map(<[u8]>::to_vec),
        )
    })
    .collect()
}

fn detector_id(signal: &str, ids: Ids) -> String {
    format!("det:{signal}:{}:{}", hex::encode(ids.0), hex::encode(ids.1))
}

#[tokio::test]
async fn rephrase_judges_the_previous_response() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let previous = ids();
    let next = ids();
    pipeline
        .ingest(request(vec![turn(
            previous,
            "session-r",
            "How do I cancel my subscription?",
            0,
            false,
        )]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![turn(
            next,
            "session-r",
            "What is the process for cancelling my subscription?",
            1,
            false,
        )]))
        .await
        .unwrap();

    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_eq!(record.span.trace_id, previous.0.to_vec());
    assert_eq!(record.span.parent_span_id, previous.1.to_vec());
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["rephrase".to_owned()])
    );
    assert_eq!(record.str(attr::CLOSEDLOOP_FAILURE_SEVERITY), Some("low"));
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(record.str(attr::SESSION_ID), Some("session-r"));
    let rows = feedback_rows(dir.path());
    assert_eq!(
        rows,
        vec![(
            detector_id("rephrase", previous),
            "rephrase".to_owned(),
            "implicit".to_owned(),
            "detector".to_owned(),
            Some(previous.1.to_vec()),
        )]
    );
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1, "the newer response has no record");
}

#[tokio::test]
async fn rephrase_is_found_when_the_spans_arrive_out_of_order_and_with_text() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let previous = ids();
    let next = ids();
    // The later turn arrives first (a collector batched them in the other order).
    pipeline
        .ingest(request(vec![turn(
            next,
            "session-o",
            "What is the process for cancelling my subscription?",
            3,
            true,
        )]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![turn(
            previous,
            "session-o",
            "How do I cancel my subscription?",
            2,
            true,
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.parent_span_id, previous.1.to_vec());
    assert_eq!(
        feedback_rows(dir.path())[0].0,
        detector_id("rephrase", previous)
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn follow_up_outside_window_and_other_sessions_yield_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let spans = vec![
        turn(
            ids(),
            "session-f",
            "How do I cancel my subscription?",
            0,
            false,
        ),
        // A follow-up on the same topic.
        turn(
            ids(),
            "session-f",
            "Will I get a refund after cancelling?",
            1,
            false,
        ),
        // The same question much later: outside the 10-minute window.
        turn(
            ids(),
            "session-f",
            "Will I get a refund after cancelling?",
            30,
            false,
        ),
        // The same question in another session.
        turn(
            ids(),
            "session-g",
            "Will I get a refund after cancelling?",
            31,
            false,
        ),
    ];
    for span in spans {
        pipeline.ingest(request(vec![span])).await.unwrap();
    }
    assert_eq!(pipeline.stats().feedback_recorded, 0);
    assert!(feedback_rows(dir.path()).is_empty());
    pipeline.shutdown().await.unwrap();
    assert!(sink.spans().is_empty());
}

#[tokio::test]
async fn the_same_query_again_is_a_regenerate() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let previous = ids();
    pipeline
        .ingest(request(vec![
            turn(previous, "session-g", "Why was my card declined?", 0, false),
            turn(ids(), "session-g", "why was my card declined", 1, false),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.parent_span_id, previous.1.to_vec());
    assert_eq!(
        spans[0].strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["regenerate".to_owned()])
    );
    let rows = feedback_rows(dir.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, detector_id("regenerate", previous));
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_explicit_regenerate_is_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let previous = ids();
    pipeline
        .ingest(request(vec![
            turn(previous, "session-x", "Why was my card declined?", 0, false),
            feedback_span(child(previous), Some(previous), "regenerate", vec![]),
        ]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![turn(
            ids(),
            "session-x",
            "Why was my card declined?",
            1,
            false,
        )]))
        .await
        .unwrap();
    let rows = feedback_rows(dir.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].3, "user");
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn abandon_fires_after_the_window_unless_the_answer_was_copied() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, abandon_on()))
        .await
        .unwrap();
    // Session c: the answer was copied. Session d: the user replied with a thumbs up to the
    // first answer, then asked something else and left. Session e: silence.
    let copied = ids();
    let first = ids();
    let last = ids();
    let silent = ids();
    pipeline
        .ingest(request(vec![
            turn(copied, "session-c", "How do I export my data?", 0, false),
            feedback_span(child(copied), Some(copied), "copy", vec![]),
            turn(first, "session-d", "Is there a dark mode?", 0, false),
            feedback_span(child(first), Some(first), "thumbs_up", vec![]),
        ]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![
            turn(last, "session-d", "How do I add a team member?", 1, false),
            turn(
                silent,
                "session-e",
                "What are your support hours?",
                0,
                false,
            ),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    let mut judged: Vec<Vec<u8>> = spans
        .iter()
        .map(|span| span.span.parent_span_id.clone())
        .collect();
    judged.sort();
    let mut expected = vec![last.1.to_vec(), silent.1.to_vec()];
    expected.sort();
    assert_eq!(
        judged, expected,
        "only the last answer of each quiet session"
    );
    for span in &spans {
        assert_eq!(
            span.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
            Some(vec!["abandon".to_owned()])
        );
    }
    // Another check interval passes: nothing more fires.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sink.spans().len(), 2);
    assert!(feedback_rows(dir.path())
        .iter()
        .all(|row| row.0 != detector_id("abandon", copied)));
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn abandon_survives_a_restart_and_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let config = with_detectors(
        dir.path(),
        &sink,
        DetectorsConfig {
            abandon: AbandonDetectorConfig {
                enabled: true,
                window_secs: 1,
                check_interval_secs: 1,
            },
            ..Default::default()
        },
    );
    let response = ids();
    let pipeline = Pipeline::start(config.clone()).await.unwrap();
    pipeline
        .ingest(request(vec![turn(
            response,
            "session-s",
            "How do I book a meeting room?",
            0,
            false,
        )]))
        .await
        .unwrap();
    pipeline.shutdown().await.unwrap();
    assert!(sink.spans().is_empty(), "not due before the restart");

    let pipeline = Pipeline::start(config.clone()).await.unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.parent_span_id, response.1.to_vec());
    pipeline.shutdown().await.unwrap();

    // A third start, an OTLP retry of the same span: nothing is emitted again.
    let pipeline = Pipeline::start(config).await.unwrap();
    pipeline
        .ingest(request(vec![turn(
            response,
            "session-s",
            "How do I book a meeting room?",
            0,
            false,
        )]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(pipeline.stats().feedback_recorded, 0);
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1);
    let rows = feedback_rows(dir.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, detector_id("abandon", response));
}

#[tokio::test]
async fn rephrase_is_not_emitted_twice_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let config = with_detectors(dir.path(), &sink, Default::default());
    let previous = ids();
    let next = ids();
    let spans = || {
        request(vec![
            turn(
                previous,
                "session-t",
                "How do I cancel my subscription?",
                0,
                false,
            ),
            turn(
                next,
                "session-t",
                "What is the process for cancelling my subscription?",
                1,
                false,
            ),
        ])
    };
    let pipeline = Pipeline::start(config.clone()).await.unwrap();
    pipeline.ingest(spans()).await.unwrap();
    assert_eq!(pipeline.stats().feedback_recorded, 1);
    pipeline.shutdown().await.unwrap();

    let pipeline = Pipeline::start(config).await.unwrap();
    pipeline.ingest(spans()).await.unwrap();
    // A third turn pairs with `next` only; `previous` keeps its one rephrase.
    pipeline
        .ingest(request(vec![turn(
            ids(),
            "session-t",
            "Do you ship to Canada?",
            2,
            false,
        )]))
        .await
        .unwrap();
    assert_eq!(pipeline.stats().feedback_recorded, 0);
    pipeline.shutdown().await.unwrap();
    assert_eq!(feedback_rows(dir.path()).len(), 1);
    assert_eq!(sink.spans().len(), 1);
}

fn edit(response: Ids, kept: f64, key: &str) -> FeedbackInput {
    FeedbackInput {
        trace_id: response.0,
        span_id: response.1,
        response_id: None,
        signal: FeedbackSignal::Edit,
        kind: None,
        value: Some(kept),
        category: None,
        comment: None,
        source: FeedbackSource::App,
        idempotency_id: Some(key.to_owned()),
        session_id: None,
        user_id: None,
    }
}

#[tokio::test]
async fn edit_applies_the_configured_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let detectors = DetectorsConfig {
        edit: EditDetectorConfig {
            enabled: true,
            max_changed_fraction: 0.2,
        },
        ..Default::default()
    };
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, detectors))
        .await
        .unwrap();
    let light = ids();
    let heavy = ids();
    pipeline
        .ingest(request(vec![
            turn(light, "session-e1", "Is there a dark mode?", 0, false),
            turn(heavy, "session-e2", "Is there a dark mode?", 0, false),
        ]))
        .await
        .unwrap();
    // 10% changed: below the threshold. 30% changed: above it (the default, 50%, would not
    // count it).
    pipeline
        .record_feedback(edit(light, 0.9, "e1"))
        .await
        .unwrap();
    pipeline
        .record_feedback(edit(heavy, 0.7, "e2"))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.parent_span_id, heavy.1.to_vec());
    assert_eq!(
        spans[0].strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["edit".to_owned()])
    );
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1);
}

/// Two turns of a session asking the same question in other words: `mh64v3` fingerprints
/// too far apart for the lexical detector, meanings close.
const PARAPHRASE: (&str, &str) = (
    "The search doesn't return any results",
    "Search isn't finding anything",
);

/// The bundled embedding model's directory; `None` (the test is skipped) without it, unless
/// `CLOSEDLOOP_TEST_REQUIRE_MODEL` is set.
fn embedding_model() -> Option<std::path::PathBuf> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models");
    let found = closedloop_embed::find_model_dir(&[target]);
    if found.is_none() {
        assert!(
            std::env::var_os("CLOSEDLOOP_TEST_REQUIRE_MODEL").is_none(),
            "no embedding model: run scripts/embedding-model.sh"
        );
        eprintln!("skipped: no embedding model (scripts/embedding-model.sh installs it)");
    }
    found
}

fn stored_semantic_fingerprints(dir: &Path) -> Vec<Option<String>> {
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.join("closedloop.db"), false)
            .unwrap();
    conn.inspect_rows(
        "SELECT semantic_fingerprint FROM responses ORDER BY start_ns",
        &[],
        1,
    )
    .unwrap()
    .iter()
    .map(|row| row[0].text().map(str::to_owned))
    .collect()
}

#[tokio::test]
async fn the_bundled_model_finds_a_paraphrase_the_lexical_fingerprints_miss() {
    let Some(model_dir) = embedding_model() else {
        return;
    };
    for with_model in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::grpc().await;
        let mut detectors = DetectorsConfig::default();
        detectors.rephrase.embedding_model_dir = with_model.then(|| model_dir.clone());
        let mut config = with_detectors(dir.path(), &sink, detectors);
        // Content is not stored: the text is read, embedded and dropped.
        config.store.store_content = false;
        let pipeline = Pipeline::start(config).await.unwrap();
        let previous = ids();
        let spans = vec![
            turn(previous, "session-p", PARAPHRASE.0, 0, true),
            turn(ids(), "session-p", PARAPHRASE.1, 1, true),
        ];
        pipeline.ingest(request(spans)).await.unwrap();
        pipeline.shutdown().await.unwrap();
        let stored = stored_semantic_fingerprints(dir.path());
        let feedback = feedback_rows(dir.path());
        if with_model {
            assert_eq!(feedback.len(), 1, "{feedback:?}");
            assert_eq!(feedback[0].0, detector_id("rephrase", previous));
            assert!(stored.iter().all(|fp| fp
                .as_deref()
                .unwrap()
                .starts_with("sh512:all-MiniLM-L6-v2:")));
            let db = std::fs::read(dir.path().join("closedloop.db")).unwrap();
            let text = String::from_utf8_lossy(&db);
            assert!(
                !text.contains("Search isn't finding"),
                "the query text was stored"
            );
        } else {
            assert_eq!(feedback, vec![], "the lexical detector alone misses it");
            assert_eq!(stored, vec![None, None]);
        }
    }
}

/// `embedding_model_name` names the fingerprints the receiver computes, so they compare with
/// an application's own fingerprints of the model under that name.
#[tokio::test]
async fn the_embedding_model_name_names_the_derived_fingerprints() {
    let Some(model_dir) = embedding_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut detectors = DetectorsConfig::default();
    detectors.rephrase.embedding_model_dir = Some(model_dir);
    detectors.rephrase.embedding_model_name = Some("minilm-l6-internal".into());
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, detectors))
        .await
        .unwrap();
    let spans = vec![
        turn(ids(), "session-n", PARAPHRASE.0, 0, true),
        turn(ids(), "session-n", PARAPHRASE.1, 1, true),
    ];
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();
    let stored = stored_semantic_fingerprints(dir.path());
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|fp| fp
            .as_deref()
            .is_some_and(|fp| fp.starts_with("sh512:minilm-l6-internal:"))),
        "{stored:?}"
    );
    assert_eq!(feedback_rows(dir.path()).len(), 1);
}

#[tokio::test]
async fn semantic_fingerprints_from_the_application_need_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(with_detectors(dir.path(), &sink, Default::default()))
        .await
        .unwrap();
    let hasher = closedloop_tracing::SemanticHasher::new("text-embedding-3-small", 8).unwrap();
    let with_embedding = |ids: Ids, query: &str, minute: u64, embedding: [f32; 8]| {
        let mut span = turn(ids, "session-a", query, minute, false);
        let fingerprint = hasher.fingerprint(&embedding).unwrap().to_string();
        span.attributes.push(text(
            attr::CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT,
            &fingerprint,
        ));
        span
    };
    let previous = ids();
    let spans = vec![
        with_embedding(
            previous,
            PARAPHRASE.0,
            0,
            [0.5, 0.25, -0.125, 0.75, 0.0, 0.5, -0.25, 0.125],
        ),
        with_embedding(
            ids(),
            PARAPHRASE.1,
            1,
            [0.5, 0.25, -0.125, 0.75, 0.0625, 0.5, -0.25, 0.125],
        ),
    ];
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();
    let feedback = feedback_rows(dir.path());
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0].0, detector_id("rephrase", previous));
}

#[tokio::test]
async fn a_missing_embedding_model_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut detectors = DetectorsConfig::default();
    let empty = dir.path().join("no-model");
    std::fs::create_dir(&empty).unwrap();
    detectors.rephrase.embedding_model_dir = Some(empty.clone());
    let Err(error) = Pipeline::start(with_detectors(dir.path(), &sink, detectors)).await else {
        panic!("the pipeline started without its embedding model");
    };
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(message.contains("embedding model"), "{message}");
    assert!(
        message.contains(&empty.join("config.json").display().to_string()),
        "{message}"
    );
}
