//! Chunk IDs from retrieval and rerank spans arrive on the generation span.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
    CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
    CLOSEDLOOP_RETRIEVAL_STAGE, GEN_AI_DATA_SOURCE_ID, GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL,
};
use closedloop_tracing::{filter, generation, rerank, retrieval, ClosedloopLayer};
use opentelemetry::{Array, Value};
use support::{attr, attr_str, attr_strings, harness, BOTH_ORDERS};

#[test]
fn two_retrievals_and_a_rerank_arrive_in_rerank_order() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            let dense = retrieval("kb").with_index_version("v7").start();
            dense
                .span()
                .in_scope(|| dense.record_chunks(["a", "b", "c"], Some(&[0.9, 0.8, 0.7])));
            drop(dense);
            let keyword = retrieval("kb").start();
            keyword
                .span()
                .in_scope(|| keyword.record_chunks(["c", "d"], None));
            drop(keyword);
            let rr = rerank("kb").with_model("rerank-v3").start();
            rr.span()
                .in_scope(|| rr.record_chunks(["d", "a", "c"], Some(&[0.95, 0.5, 0.2])));
            drop(rr);
            let llm = generation(GenAiOperationName::Chat, "gpt-4o").start();
            llm.span().in_scope(|| {});
        });
        let gen = h.span("chat gpt-4o");
        assert_eq!(
            attr_strings(&gen, CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["d", "a", "c"],
            "{order:?}"
        );
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION).as_deref(),
            Some("v7")
        );
        assert_eq!(attr_str(&gen, GEN_AI_DATA_SOURCE_ID).as_deref(), Some("kb"));

        let rr = h.span("rerank kb");
        assert_eq!(
            attr_str(&rr, CLOSEDLOOP_RETRIEVAL_STAGE).as_deref(),
            Some("rerank")
        );
        assert_eq!(
            attr_strings(&rr, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS).unwrap(),
            ["d", "a", "c"]
        );
        assert_eq!(
            attr(&rr, CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES),
            Some(Value::Array(Array::F64(vec![0.95, 0.5, 0.2])))
        );
    }
}

#[test]
fn without_a_rerank_consecutive_retrievals_are_concatenated() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            for ids in [&["a", "b"][..], &["b", "c"][..]] {
                let r = retrieval("kb").start();
                r.span()
                    .in_scope(|| r.record_chunks(ids.iter().copied(), None));
            }
            let llm = generation(GenAiOperationName::Chat, "m").start();
            llm.span().in_scope(|| {});
        });
        assert_eq!(
            attr_strings(&h.span("chat m"), CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["a", "b", "c"]
        );
    }
}

#[test]
fn a_filter_that_drops_chunks_is_reflected() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            let r = retrieval("kb").start();
            r.span()
                .in_scope(|| r.record_chunks(["a", "secret", "b"], None));
            let f = filter("kb").start();
            f.span().in_scope(|| f.record_chunks(["a", "b"], None));
            let llm = generation(GenAiOperationName::Chat, "m").start();
            llm.span().in_scope(|| {});
        });
        assert_eq!(
            attr_strings(&h.span("chat m"), CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["a", "b"]
        );
    }
}

#[test]
fn plain_spans_with_string_encodings_work() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            tracing::info_span!(
                "search",
                { GEN_AI_OPERATION_NAME } = "retrieval",
                { GEN_AI_DATA_SOURCE_ID } = "docs",
                { CLOSEDLOOP_RETRIEVAL_INDEX_VERSION } = "bm25-v4",
                { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = "x#1, y#2,z#3",
            )
            .in_scope(|| {});
            let rr = tracing::info_span!(
                "rerank step",
                { CLOSEDLOOP_RETRIEVAL_STAGE } = "rerank",
                { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = tracing::field::Empty,
            );
            rr.in_scope(|| {
                rr.record(CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, r#"["z#3","x#1"]"#);
            });
            drop(rr);
            let ids = vec!["z#3"];
            tracing::info_span!(
                "narrow",
                { CLOSEDLOOP_RETRIEVAL_STAGE } = "filter",
                { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = ?ids,
            )
            .in_scope(|| {});
            tracing::info_span!(
                "llm call",
                { GEN_AI_OPERATION_NAME } = "chat",
                { GEN_AI_REQUEST_MODEL } = "gpt-4o",
            )
            .in_scope(|| {});
        });
        // Plain spans without `otel.name` get their semantic-convention names.
        let gen = h.span("chat gpt-4o");
        assert_eq!(
            attr_strings(&gen, CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["z#3"],
            "{order:?}"
        );
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION).as_deref(),
            Some("bm25-v4")
        );
        h.span("retrieval docs");
        h.span("rerank");
        h.span("filter");
    }
}

#[test]
fn a_generation_nested_in_a_retrieval_span_gets_its_chunks() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let r = retrieval("kb").start();
            r.span().in_scope(|| {
                r.record_chunks(["a", "b"], None);
                let llm = generation(GenAiOperationName::Chat, "m").start();
                llm.span().in_scope(|| {});
            });
        });
        assert_eq!(
            attr_strings(&h.span("chat m"), CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
            ["a", "b"]
        );
    }
}

#[test]
fn parallel_branches_and_later_turns_keep_their_own_chunks() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            let left = tracing::info_span!("left");
            let right = tracing::info_span!("right");
            left.in_scope(|| {
                let r = retrieval("kb").start();
                r.span().in_scope(|| r.record_chunks(["l1"], None));
            });
            right.in_scope(|| {
                let r = retrieval("kb").start();
                r.span().in_scope(|| r.record_chunks(["r1"], None));
            });
            left.in_scope(|| {
                generation(GenAiOperationName::Chat, "left")
                    .start()
                    .span()
                    .in_scope(|| {})
            });
            right.in_scope(|| {
                generation(GenAiOperationName::Chat, "right")
                    .start()
                    .span()
                    .in_scope(|| {})
            });
            // A second step of the same request retrieves again after a generation: a new list.
            let r = retrieval("kb").start();
            r.span().in_scope(|| r.record_chunks(["n1"], None));
            generation(GenAiOperationName::Chat, "next")
                .start()
                .span()
                .in_scope(|| {});
        });
        let ids = |name| attr_strings(&h.span(name), CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap();
        assert_eq!(ids("chat left"), ["l1"]);
        assert_eq!(ids("chat right"), ["r1"]);
        assert_eq!(ids("chat next"), ["n1"]);
    }
}

#[test]
fn a_generation_without_retrieval_gets_no_context_attribute() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            generation(GenAiOperationName::Chat, "m")
                .start()
                .span()
                .in_scope(|| {});
        });
        assert_eq!(attr(&h.span("chat m"), CLOSEDLOOP_CONTEXT_CHUNK_IDS), None);
    }
}
