//! Feedback joined to the judged response: by span link, by `gen_ai.response.id`, one
//! failure record per failing response, idempotency and positive feedback.

mod support;

use std::time::Duration;

use closedloop_receiver::{
    FailureCategory, FeedbackInput, FeedbackOutcome, FeedbackSignal, FeedbackSource, Pipeline,
};
use closedloop_semconv::attribute as attr;
use closedloop_semconv::span::{failure_record_name, failure_revision_name};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn feedback_by_link_yields_one_record_revised_by_more_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();

    let response = ids();
    let generation = Generation::default();
    let outcome = pipeline
        .ingest(request(vec![generation_span(response, &generation)]))
        .await
        .unwrap();
    assert_eq!(outcome.rejected_spans, 0);

    let first = child(response);
    pipeline
        .ingest(request(vec![feedback_span(
            first,
            Some(response),
            "thumbs_down",
            vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, "hallucination")],
        )]))
        .await
        .unwrap();

    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_eq!(record.service_name.as_deref(), Some("closedloop"));
    assert_eq!(record.scope, "closedloop-receiver");
    assert_eq!(record.span.trace_id, response.0.to_vec());
    assert_eq!(record.span.parent_span_id, response.1.to_vec());
    assert_eq!(record.span.name, failure_record_name("hallucination"));
    assert_eq!(
        record.links(),
        vec![
            (
                response.0.to_vec(),
                response.1.to_vec(),
                Some("judged_response".to_owned())
            ),
            (
                first.0.to_vec(),
                first.1.to_vec(),
                Some("feedback".to_owned())
            ),
        ]
    );
    let failure_id = format!("fr_{}_{}", hex::encode(response.0), hex::encode(response.1));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id.as_str())
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("hallucination")
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_STAGE),
        Some("generation")
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_SEVERITY),
        Some("medium")
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["thumbs_down".to_owned()])
    );
    assert_eq!(record.int(attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT), Some(1));
    assert_eq!(record.int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(1));
    assert_eq!(record.str(attr::CLOSEDLOOP_TRIAGE_STATUS), Some("open"));
    assert_enriched_record(record, response, &generation);
    assert!(record
        .str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH)
        .is_some_and(|hash| hash.starts_with("sha256:")));
    assert_eq!(record.str(attr::SESSION_ID), Some(generation.session_id));
    assert_eq!(record.str(attr::USER_ID), Some(generation.user_id));

    // A second negative signal revises the same record.
    let second = child(response);
    pipeline
        .ingest(request(vec![feedback_span(
            second,
            Some(response),
            "regenerate",
            vec![],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    let revision = &spans[1];
    assert_eq!(
        revision.str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id.as_str())
    );
    assert_eq!(revision.int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(2));
    assert_eq!(
        revision.int(attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT),
        Some(2)
    );
    assert_eq!(
        revision.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["thumbs_down".to_owned(), "regenerate".to_owned()])
    );
    assert_eq!(revision.links().len(), 3);
    assert_ne!(revision.span.span_id, record.span.span_id);
    // One record in the trace view: later revisions are children of the record span.
    assert_eq!(revision.span.parent_span_id, record.span.span_id);
    assert_eq!(revision.span.name, failure_revision_name("hallucination"));

    let stats = pipeline.stats();
    assert_eq!(stats.failure_records, 1);
    assert_eq!(stats.feedback_recorded, 2);
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 2, "no third revision");
    assert_eq!(pipeline.stats().export_sent, 2);
    assert_eq!(pipeline.stats().export_pending, 0);
}

#[tokio::test]
async fn feedback_without_link_joins_by_response_id() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();

    let span_response = ids();
    let api_response = ids();
    pipeline
        .ingest(request(vec![
            generation_span(
                span_response,
                &Generation {
                    response_id: Some("chatcmpl-span"),
                    ..Default::default()
                },
            ),
            generation_span(
                api_response,
                &Generation {
                    response_id: Some("chatcmpl-api"),
                    chunk_ids: Some(vec![]),
                    ..Default::default()
                },
            ),
        ]))
        .await
        .unwrap();

    // A feedback span without a link, carrying the response id.
    pipeline
        .ingest(request(vec![feedback_span(
            child(span_response),
            None,
            "thumbs_down",
            vec![text(attr::GEN_AI_RESPONSE_ID, "chatcmpl-span")],
        )]))
        .await
        .unwrap();
    // API feedback that does not know the span ids.
    let outcome = pipeline
        .record_feedback(FeedbackInput {
            trace_id: [0; 16],
            span_id: [0; 8],
            response_id: Some("chatcmpl-api".into()),
            signal: FeedbackSignal::ThumbsDown,
            kind: None,
            value: Some(0.0),
            category: Some(FailureCategory::WrongAnswer),
            comment: None,
            source: FeedbackSource::User,
            idempotency_id: None,
            session_id: None,
            user_id: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, FeedbackOutcome::Recorded { feedback_id } if feedback_id.starts_with("fb_"))
    );

    let spans = sink.wait_for(2, WAIT).await;
    let by_parent = |ids: Ids| {
        spans
            .iter()
            .find(|span| span.span.parent_span_id == ids.1.to_vec())
            .unwrap_or_else(|| panic!("no record under {}", hex::encode(ids.1)))
    };
    let from_span = by_parent(span_response);
    assert_eq!(from_span.span.trace_id, span_response.0.to_vec());
    assert_eq!(
        from_span.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED),
        Some(true)
    );
    assert_eq!(
        from_span.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_ID),
        Some("chatcmpl-span")
    );
    let from_api = by_parent(api_response);
    assert_eq!(from_api.span.trace_id, api_response.0.to_vec());
    assert_eq!(
        from_api.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("wrong_answer")
    );
    // An empty chunk list: the generation had no context, so retrieval is blamed.
    assert_eq!(
        from_api.str(attr::CLOSEDLOOP_FAILURE_STAGE),
        Some("retrieval")
    );
    assert_eq!(
        from_api.links().len(),
        1,
        "API feedback has no span to link"
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn same_idempotency_id_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let response = ids();
    pipeline
        .ingest(request(vec![generation_span(
            response,
            &Generation::default(),
        )]))
        .await
        .unwrap();

    let input = FeedbackInput {
        trace_id: response.0,
        span_id: response.1,
        response_id: None,
        signal: FeedbackSignal::ThumbsDown,
        kind: None,
        value: None,
        category: None,
        comment: None,
        source: FeedbackSource::User,
        idempotency_id: Some("fb_01JD8Z6K2Q3M4N5P6R7S8T9V0W".into()),
        session_id: None,
        user_id: None,
    };
    let first = pipeline.record_feedback(input.clone()).await.unwrap();
    let second = pipeline.record_feedback(input).await.unwrap();
    assert_eq!(
        first,
        FeedbackOutcome::Recorded {
            feedback_id: "fb_01JD8Z6K2Q3M4N5P6R7S8T9V0W".into()
        }
    );
    assert_eq!(
        second,
        FeedbackOutcome::Duplicate {
            feedback_id: "fb_01JD8Z6K2Q3M4N5P6R7S8T9V0W".into()
        }
    );

    // The same feedback span delivered twice (an OTLP retry) also counts once.
    let span = feedback_span(child(response), Some(response), "report", vec![]);
    pipeline.ingest(request(vec![span.clone()])).await.unwrap();
    pipeline.ingest(request(vec![span])).await.unwrap();

    pipeline.shutdown().await.unwrap();
    assert_eq!(pipeline.stats().feedback_recorded, 2);
    let spans = sink.spans();
    assert_eq!(spans.len(), 2, "one revision per distinct feedback");
    let last = spans
        .iter()
        .max_by_key(|span| span.int(attr::CLOSEDLOOP_FAILURE_REVISION))
        .unwrap();
    assert_eq!(last.int(attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT), Some(2));
    assert_eq!(
        last.str(attr::CLOSEDLOOP_FAILURE_SEVERITY),
        Some("critical")
    );
}

#[tokio::test]
async fn positive_feedback_is_stored_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let response = ids();
    pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            feedback_span(child(response), Some(response), "thumbs_up", vec![]),
            feedback_span(
                child(response),
                Some(response),
                "rating",
                vec![double(attr::CLOSEDLOOP_FEEDBACK_VALUE, 0.75)],
            ),
        ]))
        .await
        .unwrap();
    pipeline.shutdown().await.unwrap();
    let stats = pipeline.stats();
    assert_eq!(stats.feedback_recorded, 2);
    assert_eq!(stats.failure_records, 0);
    assert!(sink.spans().is_empty());
}
