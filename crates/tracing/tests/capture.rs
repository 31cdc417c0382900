//! Content capture: nothing by default, each kind when turned on, always through the redactor.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_QUERY_FINGERPRINT, CLOSEDLOOP_QUERY_TEXT, GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES, GEN_AI_RETRIEVAL_QUERY_TEXT,
};
use closedloop_tracing::{generation, request, retrieval, ClosedloopLayer, ContentKind};
use opentelemetry_sdk::trace::SpanData;
use support::{attr, attr_str, harness, Harness, BOTH_ORDERS};

const CONTENT_KEYS: &[&str] = &[
    CLOSEDLOOP_QUERY_TEXT,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_RETRIEVAL_QUERY_TEXT,
];

fn scenario(h: &Harness) {
    h.run(|| {
        let root = request("chat")
            .with_query("my card 4111 was declined")
            .start();
        let _root = root.enter();
        let r = retrieval("kb").start();
        r.span()
            .in_scope(|| r.record_query_text("card declined 4111"));
        let llm = generation(GenAiOperationName::Chat, "m").start();
        llm.span().in_scope(|| {
            llm.record_input("prompt about 4111");
            llm.record_output("Your card 4111 was declined because…");
        });
    });
}

fn all_spans_content(h: &Harness) -> Vec<(String, String)> {
    let spans: Vec<SpanData> = h.spans();
    spans
        .iter()
        .flat_map(|s| {
            CONTENT_KEYS
                .iter()
                .filter_map(move |k| attr(s, k).map(|v| (k.to_string(), v.as_str().into_owned())))
        })
        .collect()
}

#[test]
fn with_capture_off_no_content_attribute_is_exported() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::builder().build());
        scenario(&h);
        assert_eq!(all_spans_content(&h), vec![], "{order:?}");
        // The fingerprint is not content and is always there.
        assert!(attr_str(&h.span("chat"), CLOSEDLOOP_QUERY_FINGERPRINT)
            .unwrap()
            .starts_with("mh64v3:"));
    }
}

#[test]
fn with_capture_on_content_is_exported_redacted() {
    for order in BOTH_ORDERS {
        let layer = ClosedloopLayer::builder()
            .with_capture(ContentKind::Query)
            .with_capture(ContentKind::Prompt)
            .with_capture(ContentKind::Output)
            .with_redactor(|kind, text| {
                assert_ne!(kind, ContentKind::Comment);
                text.replace("4111", "****").into()
            })
            .build();
        let h = harness(order, layer);
        scenario(&h);
        let content = all_spans_content(&h);
        let keys: Vec<&str> = content.iter().map(|(k, _)| k.as_str()).collect();
        for key in CONTENT_KEYS {
            assert!(keys.contains(key), "{key} missing in {order:?}");
        }
        for (key, value) in &content {
            assert!(!value.contains("4111"), "{key} not redacted: {value}");
        }
        assert_eq!(
            attr_str(&h.span("chat"), CLOSEDLOOP_QUERY_TEXT).as_deref(),
            Some("my card **** was declined")
        );
        // The generation span inherits the text with the fingerprint, so the receiver keeps
        // the query beside the answer.
        assert_eq!(
            attr_str(&h.span("chat m"), CLOSEDLOOP_QUERY_TEXT).as_deref(),
            Some("my card **** was declined"),
            "{order:?}"
        );
        let output: serde_json::Value =
            serde_json::from_str(&attr_str(&h.span("chat m"), GEN_AI_OUTPUT_MESSAGES).unwrap())
                .unwrap();
        assert_eq!(output[0]["role"], "assistant");
        assert_eq!(
            output[0]["parts"][0]["content"],
            "Your card **** was declined because…"
        );
    }
}

#[test]
fn capture_is_per_kind() {
    let layer = ClosedloopLayer::builder()
        .with_capture(ContentKind::Output)
        .build();
    let h = harness(support::Order::OtelFirst, layer);
    scenario(&h);
    let keys: Vec<String> = all_spans_content(&h).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [GEN_AI_OUTPUT_MESSAGES]);
}
