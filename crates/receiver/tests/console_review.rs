//! The review queue in real headless Chromium: a receiver fed real OTLP spans with their
//! content captured, the day's sample drawn, and a reviewer who signs in and labels answers
//! with the keyboard only. The labels are in the store with the reviewer's name, and the bad
//! ones make failure records that reach the OTLP sink.

mod support;

use std::time::Duration;

use closedloop_commands::review::{self, ReviewConfig, ReviewFilter};
use closedloop_semconv::attribute as attr;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use support::browser::{Browser, Key};
use support::receiver::TestReceiver;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// What users asked the support assistant, and what it answered.
const ANSWERS: &[(&str, &str, &[&str])] = &[
    (
        "How do I reset my password?",
        "Open Settings, choose Security, then Reset password. We email you a link that is \
         valid for 30 minutes.",
        &["kb-reset-password#2", "kb-account-locked#0"],
    ),
    (
        "Why was my card declined when I upgraded to the Team plan?",
        "Your card was declined because the Team plan is only available in the United States. \
         Please contact your bank to enable international payments.",
        &["kb-plans#4", "kb-payment-errors#1"],
    ),
    (
        "How many seats does the Team plan include?",
        "The Team plan includes 5 seats; more can be added for 8 EUR per seat per month.",
        &["kb-plans#2"],
    ),
    (
        "Can I export my invoices as CSV?",
        "Yes. In Billing > Invoices, select the invoices and choose Export > CSV. The export \
         has one row per invoice line, with the tax rate and the currency of the invoice.",
        &[
            "kb-billing-export#1",
            "kb-billing-export#3",
            "kb-invoices#0",
        ],
    ),
    (
        "Is there a dark mode on the mobile app?",
        "The mobile app follows your phone's appearance setting: turn on dark mode in iOS or \
         Android settings and the app switches with it.",
        &["kb-mobile#7"],
    ),
    (
        "Where do I find my API key?",
        "API keys are under Settings > Developer > API keys. Create a key, copy it once: it is \
         not shown again.",
        &["kb-api-keys#0", "kb-api-keys#1"],
    ),
];

fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(86_400)
}

/// A generation span with its query and answer captured (the application opted in), in a
/// session of its own.
fn captured_span(
    response: Ids,
    query: &str,
    answer: &str,
    chunks: &[&'static str],
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let generation = Generation {
        chunk_ids: Some(chunks.to_vec()),
        ..Generation::default()
    };
    let mut span = generation_span(response, &generation);
    span.attributes.retain(|kv| kv.key != attr::SESSION_ID);
    span.attributes.extend([
        text(
            attr::SESSION_ID,
            &format!("session-{}", hex::encode(response.0)),
        ),
        text(attr::CLOSEDLOOP_QUERY_TEXT, query),
        text(
            attr::GEN_AI_OUTPUT_MESSAGES,
            &serde_json::json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": answer}],
                "finish_reason": "stop",
            }])
            .to_string(),
        ),
    ]);
    span
}

/// Presses Ctrl+Enter.
async fn ctrl_enter(browser: &Browser) {
    let actions = KeyActions::new("keyboard".into())
        .then(KeyAction::Down {
            value: Key::Control.into(),
        })
        .then(KeyAction::Down {
            value: Key::Enter.into(),
        })
        .then(KeyAction::Up {
            value: Key::Enter.into(),
        })
        .then(KeyAction::Up {
            value: Key::Control.into(),
        });
    browser
        .client()
        .perform_actions(actions)
        .await
        .expect("press Ctrl+Enter");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_labels_sampled_answers_with_the_keyboard_only() {
    let Some(browser) =
        Browser::start("a_reviewer_labels_sampled_answers_with_the_keyboard_only").await
    else {
        return;
    };
    let sink = Sink::http().await;
    let receiver = TestReceiver::start(|config| {
        let (endpoint, protocol) = sink.endpoint();
        config.export.endpoint = Some(endpoint);
        config.export.protocol = Some(protocol);
        config.export.initial_backoff_millis = 50;
        config.export.timeout_millis = Some(2_000);
        config.triage.default_owner = Some("support-answers".into());
        config.store.store_content = true;
    })
    .await;
    let spans = ANSWERS
        .iter()
        .map(|(query, answer, chunks)| captured_span(ids(), query, answer, chunks))
        .collect();
    receiver.export_spans(spans).await;
    let config = ReviewConfig {
        daily_sample_size: ANSWERS.len(),
        ..ReviewConfig::default()
    };
    let outcome = review::sample_day(
        &mut command_store(&receiver.store_path),
        &config,
        closedloop_store::ContentRetention::default(),
        today(),
        Some(11),
    )
    .unwrap();
    assert_eq!(outcome.sampled, ANSWERS.len());
    let items = review::list(
        &mut command_store(&receiver.store_path),
        &ReviewFilter::default(),
    )
    .unwrap();
    let day = items[0].day.clone();

    // Signing in on the way to the queue.
    browser.open(&receiver.http_url("/ui/review")).await;
    browser.fill("input[name=name]", "ana").await;
    browser.submit("form.stack").await;
    browser
        .wait_for_text("#progress", &format!("0 of {} reviewed", ANSWERS.len()))
        .await;
    browser.wait_for_text("#position", "Item 1 of 6").await;
    assert_eq!(browser.text("#query").await, ANSWERS[0].0);

    // The first answer is right: g, and the page moves on to the next unlabelled one.
    browser.press('g').await;
    browser.wait_for_text("#position", "Item 2 of 6").await;
    browser.wait_for_text("#progress", "1 of 6 reviewed").await;
    browser.wait_for_text("#saved", "labelled good").await;

    // The second is a hallucination: 3 chooses the category (shown checked), b labels it.
    browser.press('3').await;
    let checked = browser
        .script("return document.querySelector('input[name=category]:checked').value;")
        .await;
    assert_eq!(checked, "hallucination");
    browser.screenshot("review").await;
    browser.press('b').await;
    browser.wait_for_text("#position", "Item 3 of 6").await;
    browser.wait_for_text("#saved", "hallucination").await;

    // The third is wrong: e, type what it should have said, Ctrl+Enter saves it as bad.
    browser.press('e').await;
    browser
        .type_text("The Team plan includes 10 seats; more cost 6 EUR per seat per month.")
        .await;
    ctrl_enter(&browser).await;
    browser.wait_for_text("#position", "Item 4 of 6").await;
    browser.wait_for_text("#progress", "3 of 6 reviewed").await;

    // ? shows every key; s skips the fourth; k goes back to it; j forward again.
    browser.press('?').await;
    let open = browser
        .script("return document.getElementById('key-help').open;")
        .await;
    assert_eq!(open, true);
    browser.press('s').await;
    browser.wait_for_text("#position", "Item 5 of 6").await;
    browser.press(Key::Left).await;
    browser.wait_for_text("#position", "Item 4 of 6").await;
    browser.press('j').await;
    browser.wait_for_text("#position", "Item 5 of 6").await;
    browser.wait_for_text("#progress", "3 of 6 reviewed").await;

    // The labels are in the store, given by the signed-in reviewer.
    let mut store = command_store(&receiver.store_path);
    let shown = |id| review::show(&mut command_store(&receiver.store_path), id).unwrap();
    let good = shown(items[0].id);
    assert_eq!(
        (
            good.label.as_deref(),
            good.reviewer.as_deref(),
            good.failure_id.as_deref()
        ),
        (Some("good"), Some("ana"), None)
    );
    let hallucination = shown(items[1].id);
    assert_eq!(hallucination.label.as_deref(), Some("bad"));
    assert_eq!(hallucination.category.as_deref(), Some("hallucination"));
    assert_eq!(hallucination.reviewer.as_deref(), Some("ana"));
    let wrong = shown(items[2].id);
    assert_eq!(wrong.label.as_deref(), Some("bad"));
    assert_eq!(wrong.reviewer.as_deref(), Some("ana"));
    assert_eq!(
        wrong.expected.as_deref(),
        Some("The Team plan includes 10 seats; more cost 6 EUR per seat per month.")
    );
    assert_eq!(shown(items[3].id).label, None, "skipped");
    let unlabelled = review::list(
        &mut store,
        &ReviewFilter {
            day: Some(day),
            unlabelled: true,
        },
    )
    .unwrap();
    assert_eq!(unlabelled.len(), 3);

    // The bad labels' failure records reach the OTLP sink, like any other.
    let failure_id = hallucination
        .failure_id
        .expect("a bad label makes a record");
    let exported = sink.wait_for(2, WAIT).await;
    let record = exported
        .iter()
        .find(|record| record.str(attr::CLOSEDLOOP_FAILURE_ID) == Some(failure_id.as_str()))
        .unwrap_or_else(|| panic!("{failure_id} not exported: {exported:?}"));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("hallucination")
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["label".to_owned()])
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("support-answers")
    );
    assert!(exported
        .iter()
        .any(|record| { record.str(attr::CLOSEDLOOP_FAILURE_ID) == wrong.failure_id.as_deref() }));

    // The labelled item links its failure record.
    browser
        .open(&receiver.http_url(&format!("/ui/review/{}", items[1].id)))
        .await;
    browser.wait_for_text("#current-label", "by ana").await;
    browser.wait_for_text("#failure-link", &failure_id).await;

    browser.close().await;
    receiver.stop().await.unwrap();
    sink.stop().await;
}
