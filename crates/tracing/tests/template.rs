//! Rendering a prompt template records its identity on the generation span.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_PROMPT_TEMPLATE_HASH, CLOSEDLOOP_PROMPT_TEMPLATE_ID,
    CLOSEDLOOP_PROMPT_TEMPLATE_TEXT, CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
    CLOSEDLOOP_PROMPT_VARIABLES, CLOSEDLOOP_PROMPT_VARIABLE_VALUES, GEN_AI_PROMPT_NAME,
};
use closedloop_tracing::{
    generation, ClosedloopLayer, ContentKind, PromptTemplate, TemplateRegistry,
};
use support::{attr, attr_str, attr_strings, harness, BOTH_ORDERS};

const TEXT: &str = "Answer from:\n{context}\n\nQuestion: {question}";

#[test]
fn template_id_version_and_hash_are_on_the_generation_span() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        let mut registry = TemplateRegistry::new();
        let template = registry.register("answer_with_context", TEXT);
        h.run(|| {
            let llm = generation(GenAiOperationName::Chat, "gpt-4o").start();
            llm.span().in_scope(|| {
                let prompt = registry
                    .render(
                        "answer_with_context",
                        &[("context", "kb text"), ("question", "why?")],
                    )
                    .unwrap();
                assert!(prompt.ends_with("Question: why?"));
            });
        });
        let gen = h.span("chat gpt-4o");
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_ID).as_deref(),
            Some("answer_with_context"),
            "{order:?}"
        );
        assert_eq!(
            attr_str(&gen, GEN_AI_PROMPT_NAME).as_deref(),
            Some("answer_with_context")
        );
        let hash = attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_HASH).unwrap();
        assert_eq!(hash, template.hash());
        assert!(hash.starts_with("sha256:") && hash.len() == 7 + 64);
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_VERSION).unwrap(),
            &hash[7..19]
        );
        assert_eq!(
            attr_strings(&gen, CLOSEDLOOP_PROMPT_VARIABLES).unwrap(),
            ["context", "question"]
        );
        // Content stays home by default.
        assert_eq!(attr(&gen, CLOSEDLOOP_PROMPT_VARIABLE_VALUES), None);
        assert_eq!(attr(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_TEXT), None);
    }
}

#[test]
fn a_pinned_version_is_exported_and_a_template_rendered_above_is_inherited() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        let template = PromptTemplate::new("support/refund", TEXT).with_version("v3");
        h.run(|| {
            let root = tracing::info_span!("request");
            let _root = root.enter();
            template
                .render(&[("context", "c"), ("question", "q")])
                .unwrap();
            generation(GenAiOperationName::Chat, "m")
                .start()
                .span()
                .in_scope(|| {});
        });
        let gen = h.span("chat m");
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_ID).as_deref(),
            Some("support/refund")
        );
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_VERSION).as_deref(),
            Some("v3")
        );
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_HASH).as_deref(),
            Some(template.hash())
        );
        // The request span itself is not marked as a generation.
        assert_eq!(
            attr(&h.span("request"), CLOSEDLOOP_PROMPT_TEMPLATE_ID),
            None
        );
    }
}

#[test]
fn variable_values_and_text_are_exported_with_prompt_capture_on() {
    for order in BOTH_ORDERS {
        let layer = ClosedloopLayer::builder()
            .with_capture(ContentKind::Prompt)
            .with_redactor(|_, text| text.replace("4111", "[card]").into())
            .build();
        let h = harness(order, layer);
        let template = PromptTemplate::new("t", TEXT);
        h.run(|| {
            let llm = generation(GenAiOperationName::Chat, "m").start();
            llm.span().in_scope(|| {
                template
                    .render(&[("context", "card 4111"), ("question", "why?")])
                    .unwrap();
            });
        });
        let gen = h.span("chat m");
        let values: serde_json::Value =
            serde_json::from_str(&attr_str(&gen, CLOSEDLOOP_PROMPT_VARIABLE_VALUES).unwrap())
                .unwrap();
        assert_eq!(
            values,
            serde_json::json!({"context": "card [card]", "question": "why?"})
        );
        assert_eq!(
            attr_str(&gen, CLOSEDLOOP_PROMPT_TEMPLATE_TEXT).as_deref(),
            Some(TEXT)
        );
    }
}
