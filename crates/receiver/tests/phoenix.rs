//! Failure records in a real Arize Phoenix: the judged trace exported by the application, a
//! record and its second revision exported by closedloop over OTLP, and the record's span
//! annotation, all read back through Phoenix's REST API; then Phoenix's trace view in
//! headless Chromium (written to docs/backends/phoenix.png with
//! `CLOSEDLOOP_UPDATE_SCREENSHOTS=1`).
//!
//! ```sh
//! CLOSEDLOOP_TEST_PHOENIX_PYTHON=$(scripts/phoenix-env.sh) \
//!     cargo test -p closedloop-receiver --test phoenix
//! ```

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use closedloop_receiver::{ExportProtocol, PhoenixConfig, Pipeline};
use closedloop_semconv::attribute as attr;
use serde_json::Value;
use support::browser::{Browser, UPDATE_SCREENSHOTS_VAR};
use support::phoenix::{attribute, Phoenix};
use support::*;

/// How long Phoenix may take to show what it was sent (it ingests from a queue).
const WAIT: Duration = Duration::from_secs(60);
/// The project spans without `openinference.project.name` land in.
const PROJECT: &str = "default";

/// Polls `read` until `done` holds for what it returned; panics with the last value after
/// [`WAIT`].
async fn until<T: std::fmt::Debug, F, Fut>(what: &str, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = Instant::now();
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            started.elapsed() < WAIT,
            "waited {WAIT:?} for {what}; last: {value:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn named<'a>(spans: &'a [Value], prefix: &str) -> Option<&'a Value> {
    spans.iter().find(|span| {
        span["name"]
            .as_str()
            .is_some_and(|name| name.starts_with(prefix))
    })
}

#[tokio::test]
async fn a_record_and_its_revision_read_right_in_phoenix() {
    let Some(phoenix) = Phoenix::start("a_record_and_its_revision_read_right_in_phoenix").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        Some((phoenix.url.clone(), ExportProtocol::HttpProtobuf)),
    );
    config.export.phoenix =
        Some(toml::from_str::<PhoenixConfig>(&format!("endpoint = \"{}\"", phoenix.url)).unwrap());
    let pipeline = Pipeline::start(config).await.unwrap();

    // The application's trace reaches Phoenix (its own exporter) and closedloop.
    let response = ids();
    let generation = Generation::default();
    let first = request(vec![
        generation_span(response, &generation),
        feedback_span(child(response), Some(response), "thumbs_down", vec![]),
    ]);
    phoenix.export(&first).await;
    let trace_id = hex::encode(response.0);
    let response_span_id = hex::encode(response.1);
    until(
        "the judged span in Phoenix",
        || phoenix.spans(PROJECT, &trace_id),
        |spans| spans.len() == 2,
    )
    .await;
    pipeline.ingest(first).await.unwrap();

    let spans = until(
        "the record span in Phoenix",
        || phoenix.spans(PROJECT, &trace_id),
        |spans| named(spans, "failure_record ").is_some(),
    )
    .await;
    let record = named(&spans, "failure_record ").unwrap().clone();
    let record_span_id = record["context"]["span_id"].as_str().unwrap().to_owned();
    let failure_id = format!("fr_{trace_id}_{response_span_id}");

    // The second revision: a second negative signal.
    let second = request(vec![feedback_span(
        child(response),
        Some(response),
        "regenerate",
        vec![],
    )]);
    phoenix.export(&second).await;
    pipeline.ingest(second).await.unwrap();
    let spans = until(
        "the second revision in Phoenix",
        || phoenix.spans(PROJECT, &trace_id),
        |spans| named(spans, "failure_record_revision ").is_some(),
    )
    .await;
    let annotations = until(
        "the annotation of the second revision",
        || phoenix.span_annotations(PROJECT, &record_span_id),
        |annotations| {
            annotations
                .iter()
                .any(|annotation| annotation["metadata"][attr::CLOSEDLOOP_FAILURE_REVISION] == 2)
        },
    )
    .await;
    pipeline.shutdown().await.unwrap();

    // The judged span is the LLM call; the record is its child and is not.
    let judged = spans
        .iter()
        .find(|span| span["context"]["span_id"] == response_span_id.as_str())
        .unwrap();
    assert_eq!(
        judged["span_kind"], "LLM",
        "Phoenix reads the generation as a model call"
    );
    assert_eq!(record["parent_id"], response_span_id.as_str());
    assert_eq!(record["span_kind"], "EVALUATOR");
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_FAILURE_ID),
        failure_id.as_str()
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_FAILURE_CATEGORY),
        "other"
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_FAILURE_STAGE),
        "unknown"
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_FAILURE_SEVERITY),
        "medium"
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
        generation.template_version
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
        &serde_json::json!(generation.chunk_ids.clone().unwrap())
    );
    assert_eq!(
        attribute(&record, attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL),
        generation.model
    );
    // No model the record would show as its own, and no made-up output.
    assert!(attribute(&record, "llm.model_name").is_null(), "{record:#}");
    assert!(attribute(&record, "output.value").is_null(), "{record:#}");
    let events = record["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["name"], "gen_ai.evaluation.result");

    // The revision nests under the record: one record with its history.
    let revision = named(&spans, "failure_record_revision ").unwrap();
    assert_eq!(revision["parent_id"], record_span_id.as_str());
    assert_eq!(revision["span_kind"], "EVALUATOR");
    assert_eq!(attribute(revision, attr::CLOSEDLOOP_FAILURE_REVISION), 2);
    assert_eq!(
        spans.len(),
        5,
        "generation, two feedback spans, the record, its revision: {spans:#?}"
    );

    // One annotation, updated by the second revision.
    let ours: Vec<&Value> = annotations
        .iter()
        .filter(|annotation| annotation["name"] == "closedloop.failure")
        .collect();
    assert_eq!(ours.len(), 1, "{annotations:#?}");
    let annotation = ours[0];
    assert_eq!(annotation["span_id"], record_span_id.as_str());
    assert_eq!(annotation["identifier"], failure_id.as_str());
    assert_eq!(annotation["annotator_kind"], "CODE");
    assert_eq!(annotation["result"]["label"], "other");
    assert_eq!(annotation["result"]["score"], 0.5);
    let explanation = annotation["result"]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("2 feedback (thumbs_down, regenerate)"),
        "{explanation}"
    );
    assert_eq!(
        annotation["metadata"][attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION],
        "v3"
    );

    // Phoenix's trace view, with the record selected.
    let Some(browser) = Browser::start("a_record_and_its_revision_read_right_in_phoenix").await
    else {
        return;
    };
    browser
        .open(&format!("{}/redirects/spans/{record_span_id}", phoenix.url))
        .await;
    browser
        .wait_for("the record in the trace view", || async {
            let text = browser.text("body").await;
            // The tree, and the selected record's details with its annotation.
            (text.contains("failure_record other")
                && text.contains("failure_record_revision other")
                && text.contains("closedloop.failure.category")
                && text.contains("EVALUATOR"))
            .then_some(())
        })
        .await;
    // The trace tree nests the record under the judged span and the revision under the
    // record (Phoenix marks each node with its `--trace-tree-nesting-level`).
    let levels = browser
        .script(
            "const level = name => [...document.querySelectorAll('.span-node-wrap')]
                .filter(node => node.querySelector('.span-node__heading')?.textContent.startsWith(name))
                .map(node => getComputedStyle(node).getPropertyValue('--trace-tree-nesting-level').trim());
             return [level('chat gpt-4o'), level('failure_record other'), level('failure_record_revision other')];",
        )
        .await;
    assert_eq!(levels, serde_json::json!([["0"], ["1"], ["2"]]));
    let png = browser.png().await;
    if std::env::var(UPDATE_SCREENSHOTS_VAR).is_ok_and(|value| value == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/backends/phoenix.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &png).unwrap();
    }
    browser.close().await;
}
