//! Session, user, turn and query fingerprint are inherited onto generation spans.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_QUERY_FINGERPRINT, CLOSEDLOOP_TURN_INDEX,
    GEN_AI_CONVERSATION_ID, GEN_AI_OPERATION_NAME, SESSION_ID, USER_ID,
};
use closedloop_tracing::{
    fingerprint, generation, record_query, request, ClosedloopLayer, Fingerprint,
};
use opentelemetry::Value;
use support::{attr, attr_str, harness, BOTH_ORDERS};

#[test]
fn generation_spans_inherit_from_the_request_span() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = request("POST /chat")
                .with_session_id("s-1")
                .with_user_id("alice")
                .with_turn_index(3)
                .with_conversation_id("conv-9")
                .with_query("How do I reset my password?")
                .start();
            let _root = root.enter();
            let step = tracing::info_span!("answer");
            step.in_scope(|| {
                generation(GenAiOperationName::Chat, "m")
                    .start()
                    .span()
                    .in_scope(|| {});
            });
        });
        let gen = h.span("chat m");
        assert_eq!(
            attr_str(&gen, SESSION_ID).as_deref(),
            Some("s-1"),
            "{order:?}"
        );
        assert_eq!(attr_str(&gen, USER_ID).as_deref(), Some("alice"));
        assert_eq!(attr(&gen, CLOSEDLOOP_TURN_INDEX), Some(Value::I64(3)));
        assert_eq!(
            attr_str(&gen, GEN_AI_CONVERSATION_ID).as_deref(),
            Some("conv-9")
        );
        let fp: Fingerprint = attr_str(&gen, CLOSEDLOOP_QUERY_FINGERPRINT)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(fp, fingerprint("how do i reset my password"));
    }
}

#[test]
fn plain_fields_are_inherited_and_the_generation_span_keeps_its_own_values() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!(
                "request",
                { SESSION_ID } = "outer",
                { CLOSEDLOOP_TURN_INDEX } = 1u64,
            );
            let _root = root.enter();
            tracing::info_span!(
                "llm",
                otel.name = "chat m",
                { GEN_AI_OPERATION_NAME } = "chat",
                { SESSION_ID } = "own",
            )
            .in_scope(|| {});
        });
        let gen = h.span("chat m");
        assert_eq!(attr_str(&gen, SESSION_ID).as_deref(), Some("own"));
        assert_eq!(attr(&gen, CLOSEDLOOP_TURN_INDEX), Some(Value::I64(1)));
    }
}

#[test]
fn user_ids_can_be_hashed() {
    for order in BOTH_ORDERS {
        let layer = ClosedloopLayer::builder()
            .with_hashed_user_ids("pepper")
            .build();
        let expected = layer.content_policy().user_id("alice");
        let h = harness(order, layer);
        h.run(|| {
            // Through the helper: hashed on the request span itself.
            let root = request("chat").with_user_id("alice").start();
            root.in_scope(|| {
                generation(GenAiOperationName::Chat, "a")
                    .start()
                    .span()
                    .in_scope(|| {})
            });
            // A raw plain field is hashed when copied onto the generation span.
            let plain = tracing::info_span!("plain", { USER_ID } = "alice");
            plain.in_scope(|| {
                generation(GenAiOperationName::Chat, "b")
                    .start()
                    .span()
                    .in_scope(|| {})
            });
        });
        assert!(expected.starts_with("sha256:"));
        assert_eq!(
            attr_str(&h.span("chat"), USER_ID).as_deref(),
            Some(expected.as_str())
        );
        assert_eq!(
            attr_str(&h.span("chat a"), USER_ID).as_deref(),
            Some(expected.as_str())
        );
        assert_eq!(
            attr_str(&h.span("chat b"), USER_ID).as_deref(),
            Some(expected.as_str())
        );
    }
}

#[test]
fn record_query_on_an_existing_span_is_inherited() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("handler");
            let _root = root.enter();
            record_query(&root, "export data to csv");
            record_query(&root, "a second query on the same span is ignored");
            let llm = generation(GenAiOperationName::Chat, "m").start();
            // Already inherited: recording again must not add a second attribute.
            record_query(llm.span(), "export data to csv");
            llm.span().in_scope(|| {});
        });
        let expected = fingerprint("export data to csv").to_string();
        assert_eq!(
            attr_str(&h.span("handler"), CLOSEDLOOP_QUERY_FINGERPRINT).as_deref(),
            Some(expected.as_str())
        );
        assert_eq!(
            attr_str(&h.span("chat m"), CLOSEDLOOP_QUERY_FINGERPRINT).as_deref(),
            Some(expected.as_str())
        );
    }
}
