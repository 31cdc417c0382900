//! The rephrase detector on the simulator's own query bank: every two phrasings of one topic
//! are the same question asked differently; a phrasing and the same-position phrasing of the
//! next topic in the bank (often a neighbouring subject: "reset password" / "account locked")
//! are not. The bank was written for the simulator, not for tuning the detector, so it is
//! traffic the thresholds have not seen.

use closedloop_engine::detectors::{QueryComparison, RephraseDetectorConfig};
use closedloop_tracing::{
    fingerprint, queries_contrast, query_similarity, SemanticFingerprint, SemanticHasher,
};

use crate::queries::{Topic, ANSWERABLE, EMERGING, UNANSWERABLE};

/// A labelled pair of consecutive queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The earlier query.
    pub previous: &'static str,
    /// The later one.
    pub next: &'static str,
    /// Whether the later one asks the earlier one again.
    pub rephrase: bool,
}

/// The labelled pairs of the query bank.
pub fn pairs() -> Vec<Pair> {
    let topics: Vec<&Topic> = ANSWERABLE
        .iter()
        .chain(UNANSWERABLE)
        .chain(EMERGING)
        .collect();
    let mut pairs = Vec::new();
    for topic in &topics {
        for (i, previous) in topic.phrasings.iter().enumerate() {
            for next in &topic.phrasings[i + 1..] {
                pairs.push(Pair {
                    previous,
                    next,
                    rephrase: true,
                });
            }
        }
    }
    for window in topics.windows(2) {
        for (previous, next) in window[0].phrasings.iter().zip(window[1].phrasings) {
            pairs.push(Pair {
                previous,
                next,
                rephrase: false,
            });
        }
    }
    pairs
}

/// Precision and recall of one detector on the pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Share of the pairs judged rephrasings that are.
    pub precision: f64,
    /// Share of the rephrasings judged so.
    pub recall: f64,
}

/// Scores `judge` (a verdict on a pair) on `pairs`.
pub fn score(pairs: &[Pair], judge: impl Fn(&Pair) -> bool) -> Score {
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for pair in pairs {
        match (judge(pair), pair.rephrase) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    Score {
        precision: f64::from(tp) / f64::from((tp + fp).max(1)),
        recall: f64::from(tp) / f64::from((tp + fn_).max(1)),
    }
}

/// The lexical verdict at the default thresholds: fingerprints (content off) or texts.
pub fn lexical(config: &RephraseDetectorConfig, pair: &Pair, from_text: bool) -> bool {
    let (lexical, contrast) = if from_text {
        (
            query_similarity(pair.previous, pair.next),
            queries_contrast(pair.previous, pair.next),
        )
    } else {
        let (a, b) = (fingerprint(pair.previous), fingerprint(pair.next));
        (a.similarity(&b), a.contrasts(&b))
    };
    config.rephrases(&QueryComparison {
        lexical,
        from_text,
        semantic: None,
        contrast,
    })
}

/// The combined verdict at the default thresholds, given each query's embedding.
pub fn combined(
    config: &RephraseDetectorConfig,
    hasher: &SemanticHasher,
    pair: &Pair,
    embed: impl Fn(&str) -> Vec<f32>,
) -> bool {
    let hash =
        |text: &str| -> Option<SemanticFingerprint> { hasher.fingerprint(&embed(text)).ok() };
    let semantic = match (hash(pair.previous), hash(pair.next)) {
        (Some(a), Some(b)) => a.similarity(&b),
        _ => None,
    };
    let (a, b) = (fingerprint(pair.previous), fingerprint(pair.next));
    config.rephrases(&QueryComparison {
        lexical: a.similarity(&b),
        from_text: false,
        semantic,
        contrast: a.contrasts(&b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bank_yields_both_kinds_of_pairs() {
        let pairs = pairs();
        let positives = pairs.iter().filter(|p| p.rephrase).count();
        assert!(
            positives > 20 && pairs.len() - positives > 20,
            "{positives} of {}",
            pairs.len()
        );
        assert!(pairs.iter().all(|p| p.previous != p.next));
    }

    #[test]
    fn a_semantic_similarity_changes_the_verdict_where_words_do_not_suffice() {
        let config = RephraseDetectorConfig::default();
        let pair = Pair {
            previous: "How do I reset my password?",
            next: "I forgot my password and can't log in",
            rephrase: true,
        };
        assert!(!lexical(&config, &pair, false));
        let hasher = SemanticHasher::new("test", 2).unwrap();
        // Identical embeddings: the same meaning.
        assert!(combined(&config, &hasher, &pair, |_| vec![1.0, 0.5]));
        // Orthogonal ones: different questions.
        assert!(!combined(&config, &hasher, &pair, |text| {
            if text.starts_with("How") {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            }
        }));
    }
}
