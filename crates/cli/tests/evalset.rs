//! The living eval set: every failure record becomes an eval case, near-duplicate queries
//! merge, the export round-trips and is byte-identical when the store has not changed.

mod support;

use std::time::Duration;

use closedloop_commands::evalset::{EvalCase, CSV_COLUMNS};
use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use support::*;

/// A generation span whose query fingerprint is that of `query`, with the query text itself
/// only when `capture` is true. Each is in its own session, so the implicit-signal detectors
/// see no follow-up turns.
fn generation_asking(
    ids: Ids,
    query: &str,
    capture: bool,
    generation: &Generation,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut span = generation_span(ids, generation);
    span.attributes.retain(|kv| kv.key != attr::SESSION_ID);
    span.attributes.push(text(
        attr::SESSION_ID,
        &format!("session-{}", hex::encode(ids.0)),
    ));
    span.attributes
        .retain(|kv| kv.key != attr::CLOSEDLOOP_QUERY_FINGERPRINT);
    span.attributes.push(text(
        attr::CLOSEDLOOP_QUERY_FINGERPRINT,
        &closedloop_tracing::fingerprint(query).to_string(),
    ));
    if capture {
        span.attributes
            .push(text(attr::CLOSEDLOOP_QUERY_TEXT, query));
    }
    span
}

fn thumbs_down(response: Ids, category: &str) -> opentelemetry_proto::tonic::trace::v1::Span {
    feedback_span(
        child(response),
        Some(response),
        "thumbs_down",
        vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, category)],
    )
}

async fn export(store: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "evalset",
        "--store-path",
        store.to_str().unwrap(),
        "export",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    closedloop(&args).await.expect("evalset export runs");
    std::fs::read_to_string(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_round_trips_and_merges_near_duplicate_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.store.store_content = true;
    let pipeline = Pipeline::start(config).await.unwrap();
    let v3 = Generation::default();
    let v4 = Generation {
        template_version: "v4",
        chunk_ids: Some(vec!["kb-sso#1"]),
        ..Generation::default()
    };
    // Two spellings of one question (content capture off for both), one other question
    // (captured), one response whose feedback is positive (no record, no case).
    let (a, b, c, d) = (ids(), ids(), ids(), ids());
    let spans = vec![
        generation_asking(a, "How do I reset my password?", false, &v3),
        thumbs_down(a, "irrelevant_context"),
    ];
    pipeline.ingest(request(spans)).await.unwrap();
    // Records are ordered by creation second: keep the first record first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let spans = vec![
        generation_asking(b, "how do i reset my password", false, &v3),
        feedback_span(child(b), Some(b), "rephrase", vec![]),
        generation_asking(c, "Which plans include SSO?", true, &v4),
        thumbs_down(c, "hallucination"),
        generation_asking(d, "Where is my invoice?", false, &v3),
        feedback_span(child(d), Some(d), "thumbs_up", vec![]),
    ];
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();

    let store = dir.path().join("closedloop.db");
    let first = export(&store, &dir.path().join("a.jsonl"), &[]).await;
    let second = export(&store, &dir.path().join("b.jsonl"), &[]).await;
    assert_eq!(
        first, second,
        "two exports of an unchanged store are identical"
    );

    let cases: Vec<EvalCase> = first
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a case"))
        .collect();
    assert_eq!(cases.len(), 2, "{first}");
    // Every line carries the three keys eval tools read.
    for line in first.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["input", "expected", "metadata"] {
            assert!(value.get(key).is_some(), "{key} missing from {line}");
        }
    }

    let merged = &cases[0];
    let meta = &merged.metadata;
    assert_eq!(meta.count, 2, "the two spellings merged");
    assert_eq!(meta.sources.len(), 2);
    assert_eq!(
        meta.trace_id,
        hex::encode(a.0),
        "the first record leads the case"
    );
    assert_eq!(meta.span_id, hex::encode(a.1));
    assert_eq!(meta.sources[1].trace_id, hex::encode(b.0));
    assert_eq!(
        meta.input_kind, "fingerprint",
        "no text captured: the fingerprint"
    );
    assert_eq!(
        merged.input,
        closedloop_tracing::fingerprint("How do I reset my password?").to_string()
    );
    assert_eq!(meta.template_id.as_deref(), Some("answer_with_context"));
    assert_eq!(meta.template_version.as_deref(), Some("v3"));
    assert_eq!(meta.model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        meta.chunk_ids,
        Some(vec![
            "kb-reset-password#2".to_owned(),
            "kb-account-locked#0".to_owned()
        ])
    );
    assert_eq!(meta.signals, vec!["thumbs_down", "rephrase"]);
    assert_eq!(meta.category, "irrelevant_context");
    assert_eq!(merged.expected, None);
    assert_eq!(meta.label, None);
    assert!(meta.case_id.starts_with("ec_"));

    let other = &cases[1];
    assert_eq!(other.metadata.count, 1);
    assert_eq!(other.input, "Which plans include SSO?");
    assert_eq!(other.metadata.input_kind, "query");
    assert_eq!(other.metadata.template_version.as_deref(), Some("v4"));
    assert_eq!(other.metadata.category, "hallucination");
    assert_eq!(other.metadata.trace_id, hex::encode(c.0));

    // Filters.
    let only_v4 = export(
        &store,
        &dir.path().join("v4.jsonl"),
        &["--template", "answer_with_context@v4"],
    )
    .await;
    assert_eq!(only_v4.lines().count(), 1);
    assert!(only_v4.contains("Which plans include SSO?"));
    let hallucinations = export(
        &store,
        &dir.path().join("h.jsonl"),
        &["--category", "hallucination"],
    )
    .await;
    assert_eq!(hallucinations, only_v4);
    let labelled = export(&store, &dir.path().join("l.jsonl"), &["--labelled"]).await;
    assert!(labelled.is_empty(), "no reviewer labels yet");
    let future = export(
        &store,
        &dir.path().join("f.jsonl"),
        &["--since", "2999-01-01T00:00:00Z"],
    )
    .await;
    assert!(future.is_empty());

    // CSV: a header, then one row per case, with the same ids.
    let csv = export(&store, &dir.path().join("cases.csv"), &["--format", "csv"]).await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], CSV_COLUMNS.join(","));
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1].starts_with(&format!("{},2,", meta.case_id)),
        "{}",
        rows[1]
    );
    assert!(rows[2].contains("Which plans include SSO?"));
}
