//! A second-stage rerank: query-term coverage blended with the normalised BM25 score.

use std::collections::HashSet;

use crate::bm25::{Bm25Index, Scored};
use crate::text::tokenize;

/// Weight of query-term coverage in the rerank score; the rest goes to the BM25 score.
const COVERAGE_WEIGHT: f64 = 0.6;
/// Added to the score of a document's first paragraph, which in help-center articles states
/// the main answer; later paragraphs cover exceptions.
const LEAD_PARAGRAPH_BONUS: f64 = 0.1;

/// Reorders `candidates` by `0.6 * coverage + 0.4 * bm25 / max_bm25` (plus 0.1 for a
/// document's first paragraph) and keeps the best `top_n`.
///
/// Coverage is the IDF-weighted share of the distinct query terms that appear in the chunk
/// (or its title): a chunk that mentions every part of the question beats one that repeats a
/// single word many times, which is the typical BM25 failure on short help-center paragraphs.
pub fn rerank(index: &Bm25Index, query: &str, candidates: &[Scored], top_n: usize) -> Vec<Scored> {
    let mut terms = tokenize(query);
    terms.sort_unstable();
    terms.dedup();
    let total_weight: f64 = terms.iter().map(|t| index.idf(t)).sum();
    let max_score = candidates.iter().map(|c| c.score).fold(0.0, f64::max);
    let mut out: Vec<Scored> = candidates
        .iter()
        .map(|c| {
            let chunk = &index.corpus().chunks()[c.index];
            let present: HashSet<String> = tokenize(&chunk.doc_title)
                .into_iter()
                .chain(tokenize(&chunk.text))
                .collect();
            let covered: f64 = terms
                .iter()
                .filter(|t| present.contains(*t))
                .map(|t| index.idf(t))
                .sum();
            let coverage = if total_weight > 0.0 {
                covered / total_weight
            } else {
                0.0
            };
            let bm25 = if max_score > 0.0 {
                c.score / max_score
            } else {
                0.0
            };
            Scored {
                index: c.index,
                id: c.id.clone(),
                score: COVERAGE_WEIGHT * coverage
                    + (1.0 - COVERAGE_WEIGHT) * bm25
                    + if chunk.position == 0 {
                        LEAD_PARAGRAPH_BONUS
                    } else {
                        0.0
                    },
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    out.truncate(top_n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Corpus;

    #[test]
    fn rerank_prefers_full_coverage_and_cuts_to_top_n() {
        let corpus = Corpus::from_documents([
            ("a", "# A\n\nexport export export export export export"),
            ("b", "# B\n\nexport invoices as pdf files for accounting"),
            ("c", "# C\n\ninvoices"),
        ])
        .unwrap();
        let index = Bm25Index::new(corpus);
        let query = "export invoices pdf";
        let first = index.search(query, 10);
        let reranked = rerank(&index, query, &first, 2);
        assert_eq!(reranked.len(), 2);
        assert_eq!(reranked[0].id, "b#0");
        assert!(reranked[0].score <= 1.0 + LEAD_PARAGRAPH_BONUS);
        assert!(reranked[0].score > reranked[1].score);
    }

    #[test]
    fn rerank_puts_the_lead_paragraph_first_for_a_plain_question() {
        let index = Bm25Index::new(Corpus::bundled());
        let query = "How do I reset my password?";
        let reranked = rerank(&index, query, &index.search(query, 8), 3);
        assert_eq!(reranked[0].id, "reset-password#0");
    }

    #[test]
    fn rerank_of_nothing_is_nothing() {
        let index = Bm25Index::new(Corpus::bundled());
        assert!(rerank(&index, "anything", &[], 3).is_empty());
    }
}
