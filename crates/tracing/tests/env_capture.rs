//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` is read when the layer is built.
//!
//! One test in its own binary: it sets a process-wide environment variable.

mod support;

use closedloop_semconv::attribute::GenAiOperationName;
use closedloop_semconv::attribute::{CLOSEDLOOP_QUERY_TEXT, GEN_AI_OUTPUT_MESSAGES};
use closedloop_tracing::{
    generation, request, ClosedloopLayer, ContentKind, CAPTURE_MESSAGE_CONTENT_ENV,
};
use support::{attr, attr_str, harness, Order};

#[test]
fn the_environment_turns_on_message_content_when_the_layer_is_built() {
    std::env::set_var(CAPTURE_MESSAGE_CONTENT_ENV, "TRUE");
    let from_env = ClosedloopLayer::new();
    let overridden = ClosedloopLayer::builder()
        .without_capture(ContentKind::Output)
        .build();
    std::env::remove_var(CAPTURE_MESSAGE_CONTENT_ENV);
    // Read once at build time: removing the variable afterwards changes nothing.
    let policy = from_env.content_policy();
    assert!(policy.captures(ContentKind::Query));
    assert!(policy.captures(ContentKind::Prompt));
    assert!(policy.captures(ContentKind::Output));
    assert!(!policy.captures(ContentKind::Comment));

    for (layer, output_expected) in [(from_env, true), (overridden, false)] {
        let h = harness(Order::OtelFirst, layer);
        h.run(|| {
            let root = request("chat").with_query("hello there").start();
            let _root = root.enter();
            let llm = generation(GenAiOperationName::Chat, "m").start();
            llm.span().in_scope(|| llm.record_output("hi"));
        });
        assert_eq!(
            attr_str(&h.span("chat"), CLOSEDLOOP_QUERY_TEXT).as_deref(),
            Some("hello there")
        );
        assert_eq!(
            attr(&h.span("chat m"), GEN_AI_OUTPUT_MESSAGES).is_some(),
            output_expected
        );
    }
    let default = ClosedloopLayer::new();
    assert!(!default.content_policy().captures(ContentKind::Query));
}
