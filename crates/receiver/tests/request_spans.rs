//! Feedback naming any span of a request (the HTTP server span, a chain span, a span the
//! receiver never saw) joins the LLM response that span produced, and nested LLM spans of
//! one call (LlamaIndex's predict over chat) are one response and one record.

mod support;

use std::path::Path;
use std::time::Duration;

use closedloop_receiver::{JoinConfig, Pipeline};
use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A span that is neither a response nor feedback (an HTTP server span, a chain span), from
/// `start_ms` to `end_ms` after `base`.
fn plain_span(ids: Ids, parent: Option<Ids>, name: &str, base: u64, times_ms: (u64, u64)) -> Span {
    Span {
        trace_id: ids.0.to_vec(),
        span_id: ids.1.to_vec(),
        parent_span_id: parent.map(|parent| parent.1.to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind: 2, // SERVER
        start_time_unix_nano: base + times_ms.0 * 1_000_000,
        end_time_unix_nano: base + times_ms.1 * 1_000_000,
        ..Default::default()
    }
}

/// `span` under `parent`, from `start_ms` to `end_ms` after `base`.
fn placed(mut span: Span, parent: Ids, base: u64, times_ms: (u64, u64)) -> Span {
    span.parent_span_id = parent.1.to_vec();
    span.start_time_unix_nano = base + times_ms.0 * 1_000_000;
    span.end_time_unix_nano = base + times_ms.1 * 1_000_000;
    span
}

/// LlamaIndex's two LLM spans of one answer, as OpenInference writes them: `predict`
/// carries the template and the session, the `chat` call beneath it the model.
fn predict_span(ids: Ids, parent: Ids, base: u64) -> Span {
    let mut span = plain_span(ids, Some(parent), "LLM.predict", base, (100, 2_000));
    span.kind = 1;
    span.attributes = vec![
        text("openinference.span.kind", "LLM"),
        text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID, "qa_prompt"),
        text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION, "7"),
        text(attr::SESSION_ID, "session-nested"),
    ];
    span
}

fn chat_span(ids: Ids, parent: Ids, base: u64) -> Span {
    let mut span = plain_span(ids, Some(parent), "OpenAI.chat", base, (200, 1_900));
    span.kind = 3;
    span.attributes = vec![
        text("openinference.span.kind", "LLM"),
        text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
    ];
    span
}

fn responses_in(dir: &Path) -> i64 {
    command_store(&dir.join("closedloop.db"))
        .inspect_int("SELECT count(*) FROM responses", &[])
        .unwrap()
}

fn failure_id(ids: Ids) -> String {
    format!("fr_{}_{}", hex::encode(ids.0), hex::encode(ids.1))
}

/// Feedback naming the HTTP server span, in the spans' request, and naming the chain span in
/// a later one: both join the LLM span's record, enriched.
#[tokio::test]
async fn feedback_on_the_server_span_joins_the_llm_record() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let base = now_ns();
    let server = ids();
    let chain = child(server);
    let llm = child(server);
    let generation = Generation::default();
    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /chat", base, (0, 3_000)),
            plain_span(chain, Some(server), "RetrievalQA", base, (10, 2_900)),
            placed(generation_span(llm, &generation), chain, base, (100, 2_800)),
            feedback_span(child(server), Some(server), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_enriched_record(&spans[0], llm, &generation);

    pipeline
        .ingest(request(vec![feedback_span(
            child(server),
            Some(chain),
            "regenerate",
            vec![],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    assert_enriched_record(&spans[1], llm, &generation);
    assert_eq!(
        spans[1].str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id(llm).as_str())
    );
    assert_eq!(spans[1].int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(2));
    assert_eq!(
        spans[1].int(attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT),
        Some(2)
    );
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(responses_in(dir.path()), 1);
}

/// Feedback naming the server span before any span of its trace arrived waits, and joins the
/// LLM span's record, enriched, when the spans arrive.
#[tokio::test]
async fn feedback_before_the_spans_joins_when_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    // Long enough that only the spans' arrival can end the wait.
    config.join = JoinConfig {
        wait_secs: 120,
        ..Default::default()
    };
    let pipeline = Pipeline::start(config).await.unwrap();
    let base = now_ns();
    let server = ids();
    let llm = child(server);
    let generation = Generation::default();
    pipeline
        .ingest(request(vec![feedback_span(
            child(server),
            Some(server),
            "thumbs_down",
            vec![],
        )]))
        .await
        .unwrap();
    assert_eq!(pipeline.stats().failure_records, 0, "it waits");
    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /chat", base, (0, 3_000)),
            placed(
                generation_span(llm, &generation),
                server,
                base,
                (100, 2_800),
            ),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_enriched_record(&spans[0], llm, &generation);
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1);
}

/// A trace with two LLM calls: the server span, and (once the join window passes) a span of
/// the trace the receiver never saw, resolve to the call that ended last; feedback naming the
/// first call is its own.
#[tokio::test]
async fn a_trace_with_two_llm_calls_resolves_to_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let base = now_ns();
    let server = ids();
    let chain = child(server);
    let (first, last) = (child(server), child(server));
    let condense = Generation {
        template_id: "condense_question",
        ..Default::default()
    };
    let answer = Generation::default();
    // The request lists the later call first: order in the request does not matter.
    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /chat", base, (0, 3_000)),
            plain_span(
                chain,
                Some(server),
                "ConversationalRetrievalChain",
                base,
                (5, 2_950),
            ),
            placed(generation_span(last, &answer), chain, base, (1_200, 2_900)),
            placed(generation_span(first, &condense), chain, base, (100, 1_000)),
            feedback_span(child(server), Some(server), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_enriched_record(&spans[0], last, &answer);

    let unseen = child(server);
    pipeline
        .ingest(request(vec![feedback_span(
            child(server),
            Some(unseen),
            "report",
            vec![],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    assert_enriched_record(&spans[1], last, &answer);
    assert_eq!(spans[1].int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(2));

    pipeline
        .ingest(request(vec![feedback_span(
            child(server),
            Some(first),
            "thumbs_down",
            vec![],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(3, WAIT).await;
    assert_enriched_record(&spans[2], first, &condense);
    assert_eq!(pipeline.stats().failure_records, 2);
    pipeline.shutdown().await.unwrap();
}

/// Feedback naming an LLM span that has not arrived yet waits for that span, even when
/// another answer of its trace is stored: a token for one answer never lands on another.
#[tokio::test]
async fn feedback_on_an_llm_span_not_yet_seen_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    // Long enough that only the span's arrival can end the wait.
    config.join = JoinConfig {
        wait_secs: 120,
        ..Default::default()
    };
    let pipeline = Pipeline::start(config).await.unwrap();
    let base = now_ns();
    let server = ids();
    let (first, last) = (child(server), child(server));
    let condense = Generation {
        template_id: "condense_question",
        ..Default::default()
    };
    let answer = Generation::default();
    pipeline
        .ingest(request(vec![placed(
            generation_span(first, &condense),
            server,
            base,
            (100, 1_000),
        )]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![feedback_span(
            child(server),
            Some(last),
            "thumbs_down",
            vec![],
        )]))
        .await
        .unwrap();
    assert_eq!(
        pipeline.stats().failure_records,
        0,
        "it waits for its own span"
    );
    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /chat", base, (0, 3_000)),
            placed(generation_span(last, &answer), server, base, (1_200, 2_900)),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_enriched_record(&spans[0], last, &answer);
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
}

/// Asserts that `record` carries the details of both nested LLM spans and is keyed by `key`.
fn assert_nested_record(record: &Exported, key: Ids) {
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id(key).as_str())
    );
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID),
        Some("qa_prompt"),
        "from predict"
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
        Some("7")
    );
    assert_eq!(record.str(attr::SESSION_ID), Some("session-nested"));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL),
        Some("gpt-4o-mini"),
        "from chat"
    );
}

/// Feedback on predict, then on chat: one record keyed by `key`, with `count` feedback items
/// after both.
async fn feedback_on_both(
    pipeline: &Pipeline,
    sink: &Sink,
    (predict, chat): (Ids, Ids),
    key: Ids,
    count: i64,
) {
    let before = sink.spans().len();
    for (target, signal) in [(predict, "thumbs_down"), (chat, "regenerate")] {
        pipeline
            .ingest(request(vec![feedback_span(
                child(predict),
                Some(target),
                signal,
                vec![],
            )]))
            .await
            .unwrap();
    }
    let spans = sink.wait_for(before + 2, WAIT).await;
    for record in &spans[before..] {
        assert_nested_record(record, key);
    }
    assert_eq!(
        spans[before + 1].int(attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT),
        Some(count)
    );
}

/// predict over chat in one request: one response (the chat span, with predict's template and
/// session), and feedback on either span revises the one record.
#[tokio::test]
async fn nested_llm_spans_in_one_request_are_one_response() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let base = now_ns();
    let server = ids();
    let (predict, chat) = (child(server), child(server));
    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /query", base, (0, 3_000)),
            predict_span(predict, server, base),
            chat_span(chat, predict, base),
        ]))
        .await
        .unwrap();
    feedback_on_both(&pipeline, &sink, (predict, chat), chat, 2).await;
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(responses_in(dir.path()), 1, "one response per answer");
}

/// predict in one request, chat in a later one: predict, stored first, is the response and
/// gets chat's model; feedback on either span is one record.
#[tokio::test]
async fn nested_llm_spans_split_enclosing_first_are_one_response() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let base = now_ns();
    let server = ids();
    let (predict, chat) = (child(server), child(server));
    pipeline
        .ingest(request(vec![predict_span(predict, server, base)]))
        .await
        .unwrap();
    pipeline
        .ingest(request(vec![chat_span(chat, predict, base)]))
        .await
        .unwrap();
    feedback_on_both(&pipeline, &sink, (predict, chat), predict, 2).await;
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(responses_in(dir.path()), 1, "one response per answer");
}

/// chat in one request (already judged), predict in a later one: chat, stored first, is the
/// response; its record gets a revision with predict's template and session, and feedback on
/// either span is the same record.
#[tokio::test]
async fn nested_llm_spans_split_inner_first_are_one_response() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let base = now_ns();
    let server = ids();
    let (predict, chat) = (child(server), child(server));
    pipeline
        .ingest(request(vec![
            chat_span(chat, predict, base),
            feedback_span(child(server), Some(chat), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(
        spans[0].str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id(chat).as_str())
    );
    assert_eq!(spans[0].str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID), None);

    pipeline
        .ingest(request(vec![
            plain_span(server, None, "POST /query", base, (0, 3_000)),
            predict_span(predict, server, base),
        ]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    assert_nested_record(&spans[1], chat);
    assert_eq!(spans[1].int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(2));

    feedback_on_both(&pipeline, &sink, (predict, chat), chat, 3).await;
    assert_eq!(pipeline.stats().failure_records, 1);
    pipeline.shutdown().await.unwrap();
    assert_eq!(responses_in(dir.path()), 1, "one response per answer");
}
