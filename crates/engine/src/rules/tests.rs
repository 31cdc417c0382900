use super::*;

fn item(signal: FeedbackSignal, category: Option<FailureCategory>) -> NegativeItem {
    NegativeItem {
        signal,
        kind: default_kind(signal),
        category,
    }
}

#[test]
fn negative_signals() {
    assert!(is_negative(FeedbackSignal::ThumbsDown, None, None));
    assert!(is_negative(FeedbackSignal::Regenerate, None, None));
    assert!(!is_negative(FeedbackSignal::ThumbsUp, None, None));
    assert!(is_negative(FeedbackSignal::Rating, Some(0.25), None));
    assert!(!is_negative(FeedbackSignal::Rating, Some(0.5), None));
    assert!(!is_negative(FeedbackSignal::Rating, None, None));
    assert!(is_negative(
        FeedbackSignal::Copy,
        None,
        Some(FailureCategory::Harmful)
    ));
}

#[test]
fn retrieval_categories_blame_retrieval() {
    let decision = decide(
        &[item(
            FeedbackSignal::ThumbsDown,
            Some(FailureCategory::IrrelevantContext),
        )],
        Context::Chunks,
    );
    assert_eq!(decision.stage, FailureStage::Retrieval);
    assert_eq!(decision.severity, FailureSeverity::Medium);
}

#[test]
fn empty_chunks_blame_retrieval_even_without_category() {
    let decision = decide(&[item(FeedbackSignal::ThumbsDown, None)], Context::Empty);
    assert_eq!(decision.category, FailureCategory::Other);
    assert_eq!(decision.stage, FailureStage::Retrieval);
    let decision = decide(&[item(FeedbackSignal::ThumbsDown, None)], Context::Chunks);
    assert_eq!(decision.stage, FailureStage::Unknown);
}

#[test]
fn hallucination_with_chunks_blames_generation() {
    let items = [item(
        FeedbackSignal::ThumbsDown,
        Some(FailureCategory::Hallucination),
    )];
    assert_eq!(
        decide(&items, Context::Chunks).stage,
        FailureStage::Generation
    );
    assert_eq!(
        decide(&items, Context::Empty).stage,
        FailureStage::Retrieval
    );
    assert_eq!(
        decide(&items, Context::Unknown).stage,
        FailureStage::Unknown
    );
}

#[test]
fn format_blames_prompt() {
    let items = [item(
        FeedbackSignal::ThumbsDown,
        Some(FailureCategory::Format),
    )];
    assert_eq!(decide(&items, Context::Chunks).stage, FailureStage::Prompt);
}

#[test]
fn severity_ladder() {
    let implicit = [item(FeedbackSignal::Rephrase, None)];
    assert_eq!(
        decide(&implicit, Context::Chunks).severity,
        FailureSeverity::Low
    );
    let escalate = [item(FeedbackSignal::Escalate, None)];
    assert_eq!(
        decide(&escalate, Context::Chunks).severity,
        FailureSeverity::High
    );
    let several = [
        item(FeedbackSignal::Rephrase, None),
        item(FeedbackSignal::Regenerate, None),
        item(FeedbackSignal::Abandon, None),
    ];
    assert_eq!(
        decide(&several, Context::Chunks).severity,
        FailureSeverity::High
    );
    let report = [item(FeedbackSignal::Report, None)];
    assert_eq!(
        decide(&report, Context::Chunks).severity,
        FailureSeverity::Critical
    );
}

#[test]
fn category_majority_latest_breaks_ties_and_harmful_wins() {
    let items = [
        item(FeedbackSignal::ThumbsDown, Some(FailureCategory::Format)),
        item(
            FeedbackSignal::ThumbsDown,
            Some(FailureCategory::WrongAnswer),
        ),
    ];
    assert_eq!(
        decide(&items, Context::Chunks).category,
        FailureCategory::WrongAnswer
    );
    let items = [
        item(FeedbackSignal::ThumbsDown, Some(FailureCategory::Format)),
        item(FeedbackSignal::Rating, Some(FailureCategory::Format)),
        item(
            FeedbackSignal::ThumbsDown,
            Some(FailureCategory::WrongAnswer),
        ),
    ];
    let decision = decide(&items, Context::Chunks);
    assert_eq!(decision.category, FailureCategory::Format);
    assert_eq!(
        decision.signals,
        vec![FeedbackSignal::ThumbsDown, FeedbackSignal::Rating]
    );
    let items = [
        item(FeedbackSignal::ThumbsDown, Some(FailureCategory::Format)),
        item(FeedbackSignal::Report, Some(FailureCategory::Harmful)),
    ];
    assert_eq!(
        decide(&items, Context::Chunks).category,
        FailureCategory::Harmful
    );
}
