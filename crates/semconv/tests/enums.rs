//! The typed enums convert to and from their attribute values.

use std::collections::HashSet;
use std::fmt::Display;
use std::str::FromStr;

use closedloop_semconv::attribute::*;
use closedloop_semconv::UnknownValue;

/// Checks one enum: every value round-trips, values are distinct, unknown values are rejected.
fn check<E>(all: &[E], attribute: &'static str, as_str: fn(E) -> &'static str)
where
    E: Copy + Eq + std::fmt::Debug + Display + FromStr<Err = UnknownValue>,
{
    assert!(!all.is_empty(), "{attribute} has values");
    let mut seen = HashSet::new();
    for &value in all {
        let text = as_str(value);
        assert!(seen.insert(text), "{attribute}: {text} appears twice");
        assert_eq!(value.to_string(), text);
        assert_eq!(text.parse::<E>(), Ok(value), "{attribute}: {text}");
    }
    let error = "not a member".parse::<E>().unwrap_err();
    assert_eq!(error.attribute(), attribute);
    assert_eq!(error.value(), "not a member");
    // Values are case-sensitive, as attribute values are.
    let upper = as_str(all[0]).to_uppercase();
    assert!(upper.parse::<E>().is_err(), "{attribute}: {upper}");
}

macro_rules! check_all {
    ($($enum:ident => $attribute:ident),+ $(,)?) => {
        $(
            assert_eq!($enum::ATTRIBUTE, $attribute);
            check($enum::ALL, $attribute, $enum::as_str);
        )+
    };
}

#[test]
fn every_enum_round_trips() {
    check_all! {
        FeedbackSignal => CLOSEDLOOP_FEEDBACK_SIGNAL,
        FeedbackKind => CLOSEDLOOP_FEEDBACK_KIND,
        FeedbackSource => CLOSEDLOOP_FEEDBACK_SOURCE,
        FailureCategory => CLOSEDLOOP_FAILURE_CATEGORY,
        FailureStage => CLOSEDLOOP_FAILURE_STAGE,
        FailureSeverity => CLOSEDLOOP_FAILURE_SEVERITY,
        TriageStatus => CLOSEDLOOP_TRIAGE_STATUS,
        RetrievalStage => CLOSEDLOOP_RETRIEVAL_STAGE,
        LinkType => CLOSEDLOOP_LINK_TYPE,
        ReceiverOutcome => CLOSEDLOOP_RECEIVER_OUTCOME,
        ReceiverProtocol => CLOSEDLOOP_RECEIVER_PROTOCOL,
        GenAiOperationName => GEN_AI_OPERATION_NAME,
        GenAiProviderName => GEN_AI_PROVIDER_NAME,
    }
}

#[test]
fn values_match_the_registry() {
    assert_eq!(FeedbackSignal::ThumbsDown.as_str(), "thumbs_down");
    assert_eq!(
        FailureCategory::IrrelevantContext.as_str(),
        "irrelevant_context"
    );
    assert_eq!(GenAiProviderName::AwsBedrock.as_str(), "aws.bedrock");
    assert_eq!(ReceiverProtocol::HttpProtobuf.as_str(), "http/protobuf");
    assert_eq!(LinkType::JudgedResponse.as_str(), "judged_response");
    assert_eq!(FeedbackSignal::ALL.len(), 11);
    assert_eq!(FeedbackSignal::ALL[0], FeedbackSignal::ThumbsUp);
}

#[test]
fn unknown_values_name_the_attribute_and_value() {
    let error = "aws_bedrock".parse::<GenAiProviderName>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown value `aws_bedrock` for attribute `gen_ai.provider.name`"
    );
    let error: Box<dyn std::error::Error> = Box::new(error);
    assert!(error.source().is_none());
}

#[test]
fn keys_match_their_constant_names() {
    assert_eq!(GEN_AI_REQUEST_MODEL, "gen_ai.request.model");
    assert_eq!(CLOSEDLOOP_CONTEXT_CHUNK_IDS, "closedloop.context.chunk_ids");
    assert_eq!(SESSION_ID, "session.id");
    assert_eq!(USER_ID, "user.id");
    assert_eq!(ERROR_TYPE, "error.type");
}
