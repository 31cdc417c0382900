//! The query's semantic fingerprint: exported only with query-embedding capture on, inherited
//! by generation spans, and never the vector or the text.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT, CLOSEDLOOP_QUERY_TEXT,
};
use closedloop_tracing::{
    generation, record_query_semantic_fingerprint, request, ClosedloopLayer, ContentKind,
    SemanticHasher,
};
use opentelemetry::Value;
use support::{attr, attr_str, harness, Harness, BOTH_ORDERS};

const EMBEDDING: [f32; 4] = [0.125, -0.5, 0.25, 0.75];

fn scenario(h: &Harness, with_builder: bool) -> String {
    let hasher = SemanticHasher::new("test-model", 4).unwrap();
    let fingerprint = hasher.fingerprint(&EMBEDDING).unwrap();
    h.run(|| {
        let mut builder = request("chat").with_query("vacation days");
        if with_builder {
            builder = builder.with_query_semantic_fingerprint(fingerprint.clone());
        }
        let root = builder.start();
        if !with_builder {
            record_query_semantic_fingerprint(&root, &fingerprint);
        }
        let _root = root.enter();
        let llm = generation(GenAiOperationName::Chat, "m").start();
        drop(llm);
    });
    fingerprint.to_string()
}

/// Every attribute value of every span, as text.
fn all_values(h: &Harness) -> Vec<String> {
    h.spans()
        .iter()
        .flat_map(|span| span.attributes.clone())
        .map(|kv| match kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn off_by_default() {
    for order in BOTH_ORDERS {
        for with_builder in [true, false] {
            let h = harness(order, ClosedloopLayer::builder().build());
            scenario(&h, with_builder);
            for span in h.spans() {
                assert_eq!(
                    attr(&span, CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT),
                    None,
                    "{order:?}"
                );
            }
        }
    }
}

#[test]
fn with_capture_on_generation_spans_carry_the_hash_and_nothing_else() {
    for order in BOTH_ORDERS {
        for with_builder in [true, false] {
            let layer = ClosedloopLayer::builder()
                .with_capture(ContentKind::QueryEmbedding)
                .build();
            let h = harness(order, layer);
            let want = scenario(&h, with_builder);
            assert!(want.starts_with("sh512:test-model:"));
            for name in ["chat", "chat m"] {
                assert_eq!(
                    attr_str(&h.span(name), CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT).as_deref(),
                    Some(want.as_str()),
                    "{name} {order:?} builder {with_builder}"
                );
                // Query-embedding capture is not query capture.
                assert_eq!(attr(&h.span(name), CLOSEDLOOP_QUERY_TEXT), None);
            }
            // Neither the vector's values nor the text appear anywhere.
            for value in all_values(&h) {
                assert!(!value.contains("vacation"), "{value}");
                for component in EMBEDDING {
                    assert!(!value.contains(&component.to_string()), "{value}");
                }
            }
        }
    }
}
