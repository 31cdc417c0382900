//! The console's failure records in real headless Chromium, on a real receiver fed OTLP
//! spans and feedback through its APIs and exporting to a test OTLP sink: the list filtered
//! in the browser, a record acknowledged with the keyboard (its new revision on the page and
//! at the sink), the triage board, and captured content that is markup shown as text.

mod support;

use std::time::Duration;

use closedloop_engine::triage::TriageRule;
use closedloop_engine::vocab::FailureCategory;
use closedloop_semconv::attribute as attr;
use fantoccini::Locator;
use serde_json::json;
use support::browser::Browser;
use support::receiver::{TestReceiver, TOKEN_SECRET};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// One answer the application gave and the feedback it got.
struct Answer {
    template_id: &'static str,
    template_version: &'static str,
    model: &'static str,
    data_source: &'static str,
    query: &'static str,
    answer: &'static str,
    signal: &'static str,
    category: Option<&'static str>,
    /// Sent through `POST /v1/feedback` (with the answer's token) rather than as a span.
    by_api: bool,
}

const ANSWERS: &[Answer] = &[
    Answer {
        template_id: "support-answer",
        template_version: "v3",
        model: "gpt-4o-mini",
        data_source: "help-center",
        query: "How do I get a refund for an annual plan?",
        answer: "Annual plans can be refunded within 14 days of purchase.",
        signal: "thumbs_down",
        category: Some("missing_context"),
        by_api: false,
    },
    Answer {
        template_id: "support-answer",
        template_version: "v4",
        model: "gpt-4o",
        data_source: "billing-docs",
        query: "Why was I charged twice this month?",
        answer: "You were charged twice because you have two accounts.",
        signal: "thumbs_down",
        category: Some("hallucination"),
        by_api: true,
    },
    Answer {
        template_id: "support-answer",
        template_version: "v4",
        model: "gpt-4o-mini",
        data_source: "help-center",
        query: "Can I move my workspace to the EU region?",
        answer: "Workspaces cannot be moved between regions.",
        signal: "rephrase",
        category: None,
        by_api: false,
    },
    Answer {
        template_id: "plan-compare",
        template_version: "v1",
        model: "gpt-4o",
        data_source: "pricing-pages",
        query: "What is the difference between Team and Business?",
        answer: "Business adds SSO.",
        signal: "thumbs_down",
        category: Some("incomplete"),
        by_api: true,
    },
    Answer {
        template_id: "support-answer",
        template_version: "v3",
        model: "gpt-4o-mini",
        data_source: "help-center",
        query: "How do I reset two-factor authentication?",
        answer: "Contact your administrator to reset it.",
        signal: "thumbs_down",
        category: Some("missing_context"),
        by_api: false,
    },
    Answer {
        template_id: "support-answer",
        template_version: "v4",
        model: "gpt-4o",
        data_source: "help-center",
        query: "<script>alert(1)</script> Is my data encrypted at rest?",
        answer: "Yes, with AES-256.",
        signal: "report",
        category: Some("harmful"),
        by_api: false,
    },
];

/// A receiver exporting to `sink`, routing records to owners as a support team would.
async fn receiver_exporting_to(sink: &Sink) -> TestReceiver {
    let (endpoint, protocol) = sink.endpoint();
    TestReceiver::start(|config| {
        config.store.store_content = true;
        config.export.endpoint = Some(endpoint);
        config.export.protocol = Some(protocol);
        config.export.initial_backoff_millis = 50;
        config.export.max_backoff_secs = 1;
        config.join.wait_secs = 2;
        config.triage.rules = vec![
            TriageRule {
                category: Some(FailureCategory::MissingContext),
                owner: "search-team".into(),
                sla_secs: Some(4 * 3_600),
                ..TriageRule::default()
            },
            TriageRule {
                category: Some(FailureCategory::Harmful),
                owner: "trust-and-safety".into(),
                sla_secs: Some(3_600),
                ..TriageRule::default()
            },
        ];
        config.triage.default_owner = Some("answers-team".into());
        config.triage.default_sla_secs = Some(24 * 3_600);
    })
    .await
}

/// The answer's generation span, with its query and answer captured.
fn answer_span(ids: Ids, answer: &Answer) -> opentelemetry_proto::tonic::trace::v1::Span {
    let generation = Generation {
        template_id: answer.template_id,
        template_version: answer.template_version,
        model: answer.model,
        data_source: answer.data_source,
        session_id: "session-7f3a",
        user_id: "user-2291",
        ..Generation::default()
    };
    let mut span = generation_span(ids, &generation);
    span.attributes
        .push(text(attr::CLOSEDLOOP_QUERY_TEXT, answer.query));
    let messages = json!([{
        "role": "assistant",
        "parts": [{ "type": "text", "content": answer.answer }],
    }]);
    span.attributes
        .push(text(attr::GEN_AI_OUTPUT_MESSAGES, &messages.to_string()));
    span
}

/// Sends every answer, then its feedback (a span linking to it, or the feedback API with
/// its token), and waits for each failure record at the sink. Returns the answers' ids.
async fn feed(receiver: &TestReceiver, sink: &Sink) -> Vec<Ids> {
    let answers: Vec<Ids> = ANSWERS.iter().map(|_| ids()).collect();
    receiver
        .export_spans(
            answers
                .iter()
                .zip(ANSWERS)
                .map(|(ids, answer)| answer_span(*ids, answer))
                .collect(),
        )
        .await;
    for (n, (ids, answer)) in answers.iter().zip(ANSWERS).enumerate() {
        if answer.by_api {
            let token = closedloop_tracing::issue_feedback_token(
                TOKEN_SECRET.as_bytes(),
                opentelemetry::trace::TraceId::from_bytes(ids.0),
                opentelemetry::trace::SpanId::from_bytes(ids.1),
                std::time::SystemTime::now() + Duration::from_secs(3_600),
            );
            let mut body = json!({
                "response": { "trace_id": hex::encode(ids.0), "span_id": hex::encode(ids.1) },
                "signal": answer.signal,
                "feedback_token": token,
                "idempotency_id": format!("fb-api-{n}"),
            });
            if let Some(category) = answer.category {
                body["category"] = json!(category);
            }
            let reply = reqwest::Client::new()
                .post(receiver.http_url("/v1/feedback"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap());
        } else {
            let extra = answer
                .category
                .map(|category| text(attr::CLOSEDLOOP_FAILURE_CATEGORY, category))
                .into_iter()
                .collect();
            receiver
                .export_spans(vec![feedback_span(
                    child(*ids),
                    Some(*ids),
                    answer.signal,
                    extra,
                )])
                .await;
        }
    }
    sink.wait_for(ANSWERS.len(), WAIT).await;
    answers
}

fn record_id(ids: Ids) -> String {
    format!("fr_{}_{}", hex::encode(ids.0), hex::encode(ids.1))
}

/// Signs in on the console's form as `name` and lands on `next`.
async fn sign_in(browser: &Browser, receiver: &TestReceiver, name: &str, next: &str) {
    browser
        .open(&receiver.http_url(&format!("/ui/login?next={next}")))
        .await;
    browser.fill("input[name=name]", name).await;
    browser.submit("form[action=\"/ui/login\"]").await;
    browser.wait_for_url(next).await;
}

#[tokio::test]
async fn records_are_filtered_and_acknowledged_in_chromium_and_the_revision_is_exported() {
    let Some(browser) = Browser::start(
        "records_are_filtered_and_acknowledged_in_chromium_and_the_revision_is_exported",
    )
    .await
    else {
        return;
    };
    let sink = Sink::http().await;
    let receiver = receiver_exporting_to(&sink).await;
    let answers = feed(&receiver, &sink).await;

    sign_in(&browser, &receiver, "maria", "/ui/records").await;
    browser.wait_for_text("h1", "Failure records").await;
    assert_eq!(
        browser.find_all("table.records tbody tr").await.len(),
        ANSWERS.len()
    );
    browser.screenshot("records").await;

    // Filter: the missing-context records of the help center, as a person would pick them.
    browser
        .find("select[name=category]")
        .await
        .select_by_value("missing_context")
        .await
        .unwrap();
    browser.fill("input[name=source]", "help-center").await;
    browser.submit("form.filters").await;
    browser.wait_for_url("category=missing_context").await;
    let mut shown = Vec::new();
    for link in browser
        .find_all("table.records tbody tr td:first-child a")
        .await
    {
        shown.push(link.attr("title").await.unwrap().unwrap());
    }
    shown.sort();
    let mut expected = vec![record_id(answers[0]), record_id(answers[4])];
    expected.sort();
    assert_eq!(shown, expected);
    // The chosen filters stay filled in.
    assert_eq!(browser.value("input[name=source]").await, "help-center");
    assert_eq!(
        browser.value("select[name=category]").await,
        "missing_context"
    );

    // Open the first answer's record and acknowledge it with the keyboard.
    let id = record_id(answers[0]);
    browser
        .click(&format!("a[href=\"/ui/records/{id}\"]"))
        .await;
    browser.wait_for_text("h1", &id).await;
    browser
        .wait_for_text("table.revisions tbody", "search-team")
        .await;
    assert_eq!(browser.find_all("tr.revision").await.len(), 1);
    browser.press('a').await;
    browser
        .wait_for_text("tr.revision[data-revision=\"2\"]", "acknowledged")
        .await;
    let revision = browser.text("tr.revision[data-revision=\"2\"]").await;
    assert!(revision.contains("triage by maria"), "{revision}");
    assert!(browser.text("dl.kv").await.contains("acknowledged"));

    // Reassign it with a note, from the owner field the `o` key focuses.
    browser.press('o').await;
    browser.type_text("billing-team").await;
    browser
        .fill(
            ".reassign input[name=note]",
            "The refund rules live in the billing docs.",
        )
        .await;
    browser.submit("form.reassign").await;
    browser
        .wait_for_text("tr.revision[data-revision=\"3\"]", "billing-team")
        .await;
    browser.screenshot("record").await;

    // The acknowledged revision reached the OTLP backend.
    let exported = sink.wait_for(ANSWERS.len() + 2, WAIT).await;
    let acknowledged = exported
        .iter()
        .find(|span| {
            span.str(attr::CLOSEDLOOP_FAILURE_ID) == Some(id.as_str())
                && span.int(attr::CLOSEDLOOP_FAILURE_REVISION) == Some(2)
        })
        .unwrap_or_else(|| panic!("revision 2 of {id} not exported"));
    assert_eq!(
        acknowledged.str(attr::CLOSEDLOOP_TRIAGE_STATUS),
        Some("acknowledged")
    );

    // The board: open and acknowledged records by owner, overdue first.
    browser.open(&receiver.http_url("/ui/triage")).await;
    browser.wait_for_text("h1", "Triage").await;
    let board = browser.text("main").await;
    for owner in [
        "billing-team",
        "search-team",
        "trust-and-safety",
        "answers-team",
    ] {
        assert!(
            board.contains(owner),
            "{owner} missing from the board: {board}"
        );
    }
    browser.screenshot("triage").await;

    browser.close().await;
    receiver.stop().await.unwrap();
    sink.stop().await;
}

#[tokio::test]
async fn a_captured_query_with_a_script_tag_is_shown_as_text() {
    let Some(browser) = Browser::start("a_captured_query_with_a_script_tag_is_shown_as_text").await
    else {
        return;
    };
    let sink = Sink::http().await;
    let receiver = receiver_exporting_to(&sink).await;
    let answers = feed(&receiver, &sink).await;

    sign_in(&browser, &receiver, "maria", "/ui/records").await;
    let id = record_id(answers[5]);
    browser
        .open(&receiver.http_url(&format!("/ui/records/{id}")))
        .await;
    browser.wait_for_text("h1", &id).await;
    let query = browser.text(".content").await;
    assert_eq!(
        query,
        "<script>alert(1)</script> Is my data encrypted at rest?"
    );
    assert!(
        browser.client().get_alert_text().await.is_err(),
        "no alert opened"
    );
    // The text is in the page as text: no script element came from it.
    assert_eq!(
        browser
            .script("return document.querySelectorAll('main script').length;")
            .await,
        json!(0)
    );
    assert!(browser
        .client()
        .find(Locator::Css(".content"))
        .await
        .is_ok());

    browser.close().await;
    receiver.stop().await.unwrap();
    sink.stop().await;
}
