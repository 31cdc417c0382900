//! An in-memory BM25 index over corpus chunks.

use std::collections::HashMap;

use crate::corpus::Corpus;
use crate::text::tokenize;

/// BM25 term-frequency saturation.
pub const K1: f64 = 1.2;
/// BM25 document-length normalisation.
pub const B: f64 = 0.75;

/// A chunk returned by a search, with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Position of the chunk in [`Corpus::chunks`].
    pub index: usize,
    /// The chunk ID.
    pub id: String,
    /// The BM25 score (or the rerank score, after [`crate::rerank()`]).
    pub score: f64,
}

/// A BM25 index (k1 = 1.2, b = 0.75). Each chunk is indexed with its document title, so a
/// paragraph that does not repeat the topic still matches it.
#[derive(Debug, Clone)]
pub struct Bm25Index {
    corpus: Corpus,
    /// term -> (chunk index, term frequency)
    postings: HashMap<String, Vec<(usize, u32)>>,
    lengths: Vec<u32>,
    avg_length: f64,
}

impl Bm25Index {
    /// Indexes every chunk of `corpus`.
    pub fn new(corpus: Corpus) -> Self {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(corpus.chunks().len());
        for (i, chunk) in corpus.chunks().iter().enumerate() {
            let mut tf: HashMap<String, u32> = HashMap::new();
            let tokens = tokenize(&chunk.doc_title)
                .into_iter()
                .chain(tokenize(&chunk.text));
            let mut len = 0;
            for token in tokens {
                *tf.entry(token).or_default() += 1;
                len += 1;
            }
            lengths.push(len);
            for (term, count) in tf {
                postings.entry(term).or_default().push((i, count));
            }
        }
        let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
        let avg_length = (total as f64 / lengths.len().max(1) as f64).max(1.0);
        Bm25Index {
            corpus,
            postings,
            lengths,
            avg_length,
        }
    }

    /// The indexed corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Inverse document frequency of an already normalised term (0 if unknown).
    pub(crate) fn idf(&self, term: &str) -> f64 {
        let n = self.lengths.len() as f64;
        let df = self.postings.get(term).map_or(0, Vec::len) as f64;
        if df == 0.0 {
            return 0.0;
        }
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The `k` best chunks for `query`, best first; ties broken by chunk order. Chunks that
    /// share no term with the query are never returned.
    pub fn search(&self, query: &str, k: usize) -> Vec<Scored> {
        let mut terms = tokenize(query);
        terms.sort_unstable();
        terms.dedup();
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for term in &terms {
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf(term);
            for &(i, tf) in postings {
                let tf = f64::from(tf);
                let norm = 1.0 - B + B * f64::from(self.lengths[i]) / self.avg_length;
                *scores.entry(i).or_default() += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
            }
        }
        let mut ranked: Vec<Scored> = scores
            .into_iter()
            .map(|(index, score)| Scored {
                index,
                id: self.corpus.chunks()[index].id.clone(),
                score,
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        ranked.truncate(k);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(index: &Bm25Index, query: &str) -> String {
        index
            .search(query, 5)
            .first()
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    #[test]
    fn obviously_relevant_chunk_ranks_first() {
        let index = Bm25Index::new(Corpus::bundled());
        assert_eq!(
            top(&index, "I forgot my password, how do I reset it?"),
            "reset-password#0"
        );
        assert_eq!(
            top(&index, "what happens when I exceed the API rate limit? 429"),
            "api-rate-limits#1"
        );
        assert_eq!(
            top(&index, "how do I get a refund on my annual plan"),
            "refunds#1"
        );
        assert_eq!(top(&index, "verify webhook signature"), "webhooks#1");
        assert_eq!(
            top(&index, "lost phone recovery codes 2FA"),
            "two-factor-authentication#2"
        );
        assert_eq!(
            top(&index, "export time report to PDF"),
            "export-time-reports#0"
        );
    }

    #[test]
    fn scores_are_descending_and_unmatched_queries_return_nothing() {
        let index = Bm25Index::new(Corpus::bundled());
        let hits = index.search("slack notifications stopped", 8);
        assert_eq!(hits.len(), 8);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(index.search("the and of", 8).is_empty());
        assert!(index.search("xylophone quokka", 8).is_empty());
    }

    #[test]
    fn bm25_prefers_rarer_terms_and_saturates_term_frequency() {
        let corpus = Corpus::from_documents([
            ("a", "# A\n\ncat cat cat cat cat cat cat cat dog"),
            ("b", "# B\n\ncat zebra"),
            ("c", "# C\n\ncat bird"),
        ])
        .unwrap();
        let index = Bm25Index::new(corpus);
        // "zebra" is rare, "cat" is everywhere: b wins despite a's many cats.
        assert_eq!(index.search("cat zebra", 3)[0].id, "b#0");
        assert!(index.idf("zebra") > index.idf("cat"));
    }
}
