//! Feedback that arrives as OTLP spans, against a real receiver: comments stay out of the store
//! unless captured, and `closedloop.feedback.id` is unique per judged response.

mod support;

use closedloop_semconv::attribute as attr;
use support::receiver::TestReceiver;
use support::*;

fn commented_feedback(
    target: Ids,
    feedback_id: &str,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    feedback_span(
        child(target),
        Some(target),
        "thumbs_down",
        vec![
            text(
                attr::CLOSEDLOOP_FEEDBACK_COMMENT,
                "My account number is 12345.",
            ),
            text(attr::CLOSEDLOOP_FEEDBACK_ID, feedback_id),
        ],
    )
}

fn stored_comments(receiver: &TestReceiver) -> Vec<Option<String>> {
    receiver
        .read_store()
        .inspect_rows("SELECT comment FROM feedback ORDER BY id", &[], 1)
        .unwrap()
        .into_iter()
        .map(|row| row[0].text().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn span_comments_are_dropped_unless_captured() {
    // Capture off (the default), and capture on with content storage off: nothing is kept.
    let off = TestReceiver::start(|_| {}).await;
    let no_content = TestReceiver::start(|config| {
        config.feedback.capture_comments = true;
        config.store.store_content = false;
    })
    .await;
    for receiver in [&off, &no_content] {
        receiver
            .export_spans(vec![commented_feedback(ids(), "fb-comment")])
            .await;
        assert_eq!(stored_comments(receiver), vec![None]);
    }
    off.stop().await.unwrap();
    no_content.stop().await.unwrap();

    // Opted in: kept, cut to `max_comment_chars`.
    let on = TestReceiver::start(|config| {
        config.store.store_content = true;
        config.feedback.capture_comments = true;
        config.feedback.max_comment_chars = 10;
    })
    .await;
    on.export_spans(vec![commented_feedback(ids(), "fb-comment")])
        .await;
    assert_eq!(stored_comments(&on), vec![Some("My account".to_owned())]);
    on.stop().await.unwrap();
}

#[tokio::test]
async fn feedback_span_ids_are_unique_per_judged_response() {
    let receiver = TestReceiver::start(|_| {}).await;
    let (a, b) = (ids(), ids());
    receiver
        .export_spans(vec![
            commented_feedback(a, "fb-span-shared"),
            commented_feedback(b, "fb-span-shared"),
        ])
        .await;
    // A retry of the feedback on A (a new span, the same id and judged span) is a duplicate.
    receiver
        .export_spans(vec![commented_feedback(a, "fb-span-shared")])
        .await;
    let targets: Vec<Vec<u8>> = receiver
        .read_store()
        .inspect_rows(
            "SELECT link_span_id FROM feedback WHERE feedback_id = 'fb-span-shared' ORDER BY id",
            &[],
            1,
        )
        .unwrap()
        .into_iter()
        .map(|row| row[0].blob().unwrap().to_vec())
        .collect();
    assert_eq!(targets, vec![a.1.to_vec(), b.1.to_vec()]);
    receiver.stop().await.unwrap();
}
