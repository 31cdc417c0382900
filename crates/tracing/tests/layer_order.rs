//! Both layer orders export the same attributes, including for spans never entered.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
    GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_USAGE_OUTPUT_TOKENS, SESSION_ID,
};
use closedloop_tracing::{generation, retrieval, ClosedloopLayer};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use support::{attr, attr_strings, harness, Harness, Order, BOTH_ORDERS};

fn scenario(h: &Harness) {
    h.run(|| {
        let root = tracing::info_span!("request", { SESSION_ID } = "s");
        let _root = root.enter();
        let r = retrieval("kb").start();
        r.span().in_scope(|| r.record_chunks(["a", "b"], None));
        // Created and dropped without ever being entered.
        let _never_entered = tracing::info_span!(
            "llm",
            { GEN_AI_OPERATION_NAME } = "chat",
            { GEN_AI_REQUEST_MODEL } = "quiet",
        );
        drop(_never_entered);
        let llm = generation(GenAiOperationName::Chat, "m").start();
        llm.span().in_scope(|| {});
        // Recorded after the last exit.
        llm.record_usage(10, 20);
    });
}

fn normalised(spans: Vec<SpanData>) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<_> = spans
        .into_iter()
        .map(|s| {
            let mut attrs: Vec<(String, String)> = s
                .attributes
                .iter()
                .filter(|kv| {
                    !["busy_ns", "idle_ns", "thread.id", "thread.name"].contains(&kv.key.as_str())
                })
                .filter(|kv| !kv.key.as_str().starts_with("code."))
                .map(|kv| (kv.key.to_string(), format!("{:?}", kv.value)))
                .collect();
            attrs.sort();
            (s.name.to_string(), attrs)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn both_orders_export_the_same_spans_and_attributes() {
    let [a, b] = BOTH_ORDERS.map(|order| {
        let h = harness(order, ClosedloopLayer::new());
        scenario(&h);
        normalised(h.spans())
    });
    assert_eq!(a, b);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chat m", "chat quiet", "request", "retrieval kb"]);
}

#[test]
fn spans_never_entered_and_late_records_are_not_lost() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        scenario(&h);
        let quiet = h.span("chat quiet");
        assert_eq!(
            attr_strings(&quiet, CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["a", "b"],
            "{order:?}"
        );
        let gen = h.span("chat m");
        assert_eq!(attr(&gen, GEN_AI_USAGE_OUTPUT_TOKENS), Some(Value::I64(20)));
        assert_eq!(
            attr_strings(&h.span("retrieval kb"), CLOSEDLOOP_RETRIEVAL_CHUNK_IDS).unwrap(),
            ["a", "b"]
        );
    }
}

#[test]
fn without_an_opentelemetry_layer_the_layer_is_harmless() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::Registry::default().with(ClosedloopLayer::new()),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let r = retrieval("kb").start();
        r.span().in_scope(|| r.record_chunks(["a"], None));
        let llm = generation(GenAiOperationName::Chat, "m").start();
        assert_eq!(
            llm.span()
                .in_scope(closedloop_tracing::ResponseRef::current),
            None
        );
        assert_eq!(llm.response_ref(), None);
    });
}

#[test]
fn the_layer_debug_output_reports_the_observed_order() {
    let h = harness(Order::OtelFirst, ClosedloopLayer::new());
    scenario(&h);
    let layer = h.dispatch.downcast_ref::<ClosedloopLayer>().unwrap();
    assert!(format!("{layer:?}").contains("opentelemetry first"));
    let h = harness(Order::ClosedloopFirst, ClosedloopLayer::new());
    scenario(&h);
    let layer = h.dispatch.downcast_ref::<ClosedloopLayer>().unwrap();
    assert!(format!("{layer:?}").contains("closedloop first"));
}
