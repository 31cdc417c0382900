//! The OpenInference and OpenLLMetry equivalents, and the reverse lookup.

use closedloop_semconv::attribute;
use closedloop_semconv::compat::{self, ForeignMatch, EQUIVALENTS};

#[test]
fn equivalents_are_sorted_and_unique() {
    assert!(EQUIVALENTS
        .windows(2)
        .all(|pair| pair[0].attribute < pair[1].attribute));
    for equivalents in EQUIVALENTS {
        assert!(!equivalents.openinference.is_empty() || !equivalents.openllmetry.is_empty());
        assert_eq!(
            compat::equivalents(equivalents.attribute),
            Some(equivalents)
        );
    }
}

#[test]
fn equivalents_of_an_attribute() {
    let model = compat::equivalents(attribute::GEN_AI_REQUEST_MODEL).unwrap();
    // OpenInference names only the response model.
    assert!(model.openinference.is_empty());
    let response_model = compat::equivalents(attribute::GEN_AI_RESPONSE_MODEL).unwrap();
    assert_eq!(response_model.openinference, ["llm.model_name"]);
    assert_eq!(
        model.openllmetry,
        ["gen_ai.request.model", "llm.request.model"]
    );
    assert_eq!(compat::equivalents(attribute::CLOSEDLOOP_FAILURE_ID), None);
    assert_eq!(compat::equivalents("no.such.attribute"), None);
}

#[test]
fn plain_foreign_keys_resolve() {
    let cases = [
        ("llm.model_name", attribute::GEN_AI_RESPONSE_MODEL),
        (
            "llm.token_count.prompt",
            attribute::GEN_AI_USAGE_INPUT_TOKENS,
        ),
        (
            "gen_ai.usage.completion_tokens",
            attribute::GEN_AI_USAGE_OUTPUT_TOKENS,
        ),
        (
            "traceloop.prompt.key",
            attribute::CLOSEDLOOP_PROMPT_TEMPLATE_ID,
        ),
        (
            "llm.prompt_template.version",
            attribute::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
        ),
        (
            "traceloop.association.properties.session_id",
            attribute::SESSION_ID,
        ),
        ("session.id", attribute::SESSION_ID),
        ("llm.provider", attribute::GEN_AI_PROVIDER_NAME),
        ("gen_ai.system", attribute::GEN_AI_PROVIDER_NAME),
        ("prompt.id", attribute::GEN_AI_PROMPT_NAME),
        (
            "db.query.result.id",
            attribute::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
        ),
    ];
    for (key, expected) in cases {
        assert_eq!(compat::canonical_for(key), Some(expected), "{key}");
        assert_eq!(
            compat::match_foreign(key),
            Some(ForeignMatch {
                attribute: expected,
                index: None
            }),
            "{key}"
        );
    }
}

#[test]
fn indexed_foreign_keys_resolve_with_their_index() {
    let cases = [
        (
            "retrieval.documents.3.document.id",
            attribute::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
            3,
        ),
        (
            "retrieval.documents.0.document.score",
            attribute::CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES,
            0,
        ),
        (
            "annotations.12.annotation.annotator_kind",
            attribute::CLOSEDLOOP_FEEDBACK_SOURCE,
            12,
        ),
        (
            "gen_ai.prompt.1.content",
            attribute::GEN_AI_INPUT_MESSAGES,
            1,
        ),
        (
            "gen_ai.completion.0.content",
            attribute::GEN_AI_OUTPUT_MESSAGES,
            0,
        ),
    ];
    for (key, expected, index) in cases {
        assert_eq!(compat::canonical_for(key), Some(expected), "{key}");
        assert_eq!(
            compat::match_foreign(key),
            Some(ForeignMatch {
                attribute: expected,
                index: Some(index)
            }),
            "{key}"
        );
    }
}

#[test]
fn malformed_and_unknown_keys_do_not_resolve() {
    for key in [
        "retrieval.documents.<i>.document.id",
        "retrieval.documents..document.id",
        "retrieval.documents.x.document.id",
        "retrieval.documents.-1.document.id",
        "retrieval.documents.+1.document.id",
        "retrieval.documents.1.2.document.id",
        "retrieval.documents.99999999999999999999999.document.id",
        "retrieval.documents.3.document.content",
        "closedloop.feedback.signal",
        "llm.model_name.extra",
        "",
    ] {
        assert_eq!(compat::match_foreign(key), None, "{key}");
    }
}
