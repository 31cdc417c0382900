//! Counters broken down by the attributes the registry requires on the receiver's own
//! metrics: feedback by (signal, kind, source) for `closedloop.feedback.received`, failure
//! records by (category, stage) for `closedloop.failure.records`.
//!
//! One atomic cell per combination of enum values: the cardinality is fixed by the
//! conventions (11 × 2 × 4 and 9 × 4 cells), whatever the input.

use std::sync::atomic::{AtomicU64, Ordering};

use closedloop_semconv::attribute::{
    FailureCategory, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
};

/// Feedback recorded, by signal, kind and source.
#[derive(Debug)]
pub struct FeedbackCounts(Box<[AtomicU64]>);

impl Default for FeedbackCounts {
    fn default() -> Self {
        let cells = FeedbackSignal::ALL.len() * FeedbackKind::ALL.len() * FeedbackSource::ALL.len();
        Self(cells_of(cells))
    }
}

impl FeedbackCounts {
    /// Counts one feedback item.
    pub fn add(&self, signal: FeedbackSignal, kind: FeedbackKind, source: FeedbackSource) {
        let cell = (position(FeedbackSignal::ALL, signal) * FeedbackKind::ALL.len()
            + position(FeedbackKind::ALL, kind))
            * FeedbackSource::ALL.len()
            + position(FeedbackSource::ALL, source);
        self.0[cell].fetch_add(1, Ordering::Relaxed);
    }

    /// The combinations counted so far, with their counts.
    pub fn snapshot(&self) -> Vec<((FeedbackSignal, FeedbackKind, FeedbackSource), u64)> {
        let mut counts = Vec::new();
        let mut cells = self.0.iter();
        for &signal in FeedbackSignal::ALL {
            for &kind in FeedbackKind::ALL {
                for &source in FeedbackSource::ALL {
                    let count = cells.next().map_or(0, |cell| cell.load(Ordering::Relaxed));
                    if count > 0 {
                        counts.push(((signal, kind, source), count));
                    }
                }
            }
        }
        counts
    }
}

/// Failure records created, by category and stage.
#[derive(Debug)]
pub struct FailureCounts(Box<[AtomicU64]>);

impl Default for FailureCounts {
    fn default() -> Self {
        Self(cells_of(
            FailureCategory::ALL.len() * FailureStage::ALL.len(),
        ))
    }
}

impl FailureCounts {
    /// Counts one new failure record.
    pub fn add(&self, category: FailureCategory, stage: FailureStage) {
        let cell = position(FailureCategory::ALL, category) * FailureStage::ALL.len()
            + position(FailureStage::ALL, stage);
        self.0[cell].fetch_add(1, Ordering::Relaxed);
    }

    /// The combinations counted so far, with their counts.
    pub fn snapshot(&self) -> Vec<((FailureCategory, FailureStage), u64)> {
        let mut counts = Vec::new();
        let mut cells = self.0.iter();
        for &category in FailureCategory::ALL {
            for &stage in FailureStage::ALL {
                let count = cells.next().map_or(0, |cell| cell.load(Ordering::Relaxed));
                if count > 0 {
                    counts.push(((category, stage), count));
                }
            }
        }
        counts
    }
}

fn cells_of(count: usize) -> Box<[AtomicU64]> {
    (0..count).map(|_| AtomicU64::new(0)).collect()
}

/// The position of `value` in `all` (the enum's `ALL`, which lists every variant).
fn position<T: PartialEq + Copy>(all: &[T], value: T) -> usize {
    all.iter().position(|&known| known == value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_counts_by_combination() {
        let counts = FeedbackCounts::default();
        counts.add(
            FeedbackSignal::ThumbsDown,
            FeedbackKind::Explicit,
            FeedbackSource::User,
        );
        counts.add(
            FeedbackSignal::ThumbsDown,
            FeedbackKind::Explicit,
            FeedbackSource::User,
        );
        counts.add(
            FeedbackSignal::Rephrase,
            FeedbackKind::Implicit,
            FeedbackSource::Detector,
        );
        let mut snapshot = counts.snapshot();
        snapshot.sort_by_key(|(_, count)| *count);
        assert_eq!(
            snapshot,
            vec![
                (
                    (
                        FeedbackSignal::Rephrase,
                        FeedbackKind::Implicit,
                        FeedbackSource::Detector
                    ),
                    1
                ),
                (
                    (
                        FeedbackSignal::ThumbsDown,
                        FeedbackKind::Explicit,
                        FeedbackSource::User
                    ),
                    2
                ),
            ]
        );
    }

    #[test]
    fn every_combination_has_its_own_cell() {
        let counts = FailureCounts::default();
        for &category in FailureCategory::ALL {
            for &stage in FailureStage::ALL {
                counts.add(category, stage);
            }
        }
        let snapshot = counts.snapshot();
        assert_eq!(
            snapshot.len(),
            FailureCategory::ALL.len() * FailureStage::ALL.len()
        );
        assert!(snapshot.iter().all(|(_, count)| *count == 1));
    }
}
