//! The rules that decide a failure record's category, stage and severity.
//!
//! These are pure functions of the record's negative feedback and of what the judged
//! response span was given; the table below is the reference (also shipped as
//! `failure-rules.md` in the crate).
//!
#![doc = include_str!("../failure-rules.md")]

use crate::vocab::{FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal};

/// The value below which a scored signal counts as negative.
const NEGATIVE_BELOW: f64 = 0.5;

/// The number of negative items from which a record is `high` severity.
const SEVERAL_NEGATIVES: usize = 3;

/// Whether a piece of feedback is negative, and so belongs to a failure record, with the
/// default edit threshold.
// The join uses `is_negative_with` and the configured edit threshold; this is the rule table
// as documented, for callers without a configuration.
#[cfg_attr(not(test), allow(dead_code))]
pub fn is_negative(
    signal: FeedbackSignal,
    value: Option<f64>,
    category: Option<FailureCategory>,
) -> bool {
    is_negative_with(signal, value, category, Some(NEGATIVE_BELOW))
}

/// Whether a piece of feedback is negative, with the threshold below which an `edit` value
/// (the fraction of the answer kept) is negative; `None`: edits are never negative (the edit
/// detector is off).
pub fn is_negative_with(
    signal: FeedbackSignal,
    value: Option<f64>,
    category: Option<FailureCategory>,
    edit_negative_below: Option<f64>,
) -> bool {
    if category == Some(FailureCategory::Harmful) {
        return true;
    }
    match signal {
        FeedbackSignal::ThumbsUp | FeedbackSignal::Copy => false,
        FeedbackSignal::Edit => {
            edit_negative_below.is_some_and(|below| value.is_some_and(|value| value < below))
        }
        FeedbackSignal::Rating | FeedbackSignal::Label => {
            value.is_some_and(|value| value < NEGATIVE_BELOW)
        }
        // thumbs_down, regenerate, report, escalate, rephrase, abandon, and any signal the
        // registry adds later with a low value.
        FeedbackSignal::ThumbsDown
        | FeedbackSignal::Regenerate
        | FeedbackSignal::Report
        | FeedbackSignal::Escalate
        | FeedbackSignal::Rephrase
        | FeedbackSignal::Abandon => true,
        #[allow(unreachable_patterns)] // the enum is non_exhaustive across crates
        _ => value.is_some_and(|value| value < NEGATIVE_BELOW),
    }
}

/// The kind of a signal when the feedback does not say.
pub fn default_kind(signal: FeedbackSignal) -> FeedbackKind {
    match signal {
        FeedbackSignal::Rephrase
        | FeedbackSignal::Regenerate
        | FeedbackSignal::Edit
        | FeedbackSignal::Copy
        | FeedbackSignal::Abandon => FeedbackKind::Implicit,
        _ => FeedbackKind::Explicit,
    }
}

/// One negative feedback item of a record, as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NegativeItem {
    /// The feedback signal.
    pub signal: FeedbackSignal,
    /// Explicit or implicit.
    pub kind: FeedbackKind,
    /// The category the feedback names, if any.
    pub category: Option<FailureCategory>,
}

/// What the judged response was given, as far as the receiver knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The response span was not seen within the join window.
    Unknown,
    /// The response span was seen and carried no chunk ids.
    NoChunkAttribute,
    /// The response span had an empty chunk list: no retrieved context.
    Empty,
    /// The response span had chunks.
    Chunks,
}

/// The decided fields of a failure record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The failure category.
    pub category: FailureCategory,
    /// The stage of the application that failed.
    pub stage: FailureStage,
    /// How bad the failure is.
    pub severity: FailureSeverity,
    /// The distinct signals, in order of first arrival.
    pub signals: Vec<FeedbackSignal>,
}

/// Decides a record from its negative feedback, oldest first.
pub fn decide(items: &[NegativeItem], context: Context) -> Decision {
    let category = category(items);
    Decision {
        category,
        stage: stage(category, context),
        severity: severity(items, category),
        signals: items.iter().fold(Vec::new(), |mut signals, item| {
            if !signals.contains(&item.signal) {
                signals.push(item.signal);
            }
            signals
        }),
    }
}

fn category(items: &[NegativeItem]) -> FailureCategory {
    let asserted = || items.iter().filter_map(|item| item.category);
    if asserted().any(|category| category == FailureCategory::Harmful) {
        return FailureCategory::Harmful;
    }
    // Most frequent; the later one wins a tie, so iterate from the newest and keep the first
    // maximum.
    let mut best: Option<(FailureCategory, usize)> = None;
    for candidate in asserted().collect::<Vec<_>>().into_iter().rev() {
        let count = asserted().filter(|&other| other == candidate).count();
        if best.is_none_or(|(_, best_count)| count > best_count) {
            best = Some((candidate, count));
        }
    }
    best.map_or(FailureCategory::Other, |(category, _)| category)
}

fn stage(category: FailureCategory, context: Context) -> FailureStage {
    match category {
        FailureCategory::IrrelevantContext | FailureCategory::MissingContext => {
            FailureStage::Retrieval
        }
        FailureCategory::Format | FailureCategory::Refusal => FailureStage::Prompt,
        FailureCategory::Hallucination
        | FailureCategory::WrongAnswer
        | FailureCategory::Incomplete
        | FailureCategory::Harmful => match context {
            Context::Empty => FailureStage::Retrieval,
            Context::Chunks | Context::NoChunkAttribute => FailureStage::Generation,
            Context::Unknown => FailureStage::Unknown,
        },
        _ => match context {
            Context::Empty => FailureStage::Retrieval,
            _ => FailureStage::Unknown,
        },
    }
}

fn severity(items: &[NegativeItem], category: FailureCategory) -> FailureSeverity {
    let has = |signal| items.iter().any(|item| item.signal == signal);
    if has(FeedbackSignal::Report) || category == FailureCategory::Harmful {
        FailureSeverity::Critical
    } else if has(FeedbackSignal::Escalate) || items.len() >= SEVERAL_NEGATIVES {
        FailureSeverity::High
    } else if items.iter().any(|item| item.kind == FeedbackKind::Explicit) {
        FailureSeverity::Medium
    } else {
        FailureSeverity::Low
    }
}

#[cfg(test)]
mod tests;
