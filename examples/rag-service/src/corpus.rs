//! The help-center corpus: Markdown documents chunked by paragraph, with stable chunk IDs and
//! an index version derived from the content.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The documents bundled into the binary, as `(slug, markdown)`, in slug order.
///
/// A test checks that this list and the files in `corpus/` agree.
macro_rules! bundled {
    ($($slug:literal),* $(,)?) => {
        &[$(($slug, include_str!(concat!("../corpus/", $slug, ".md")))),*]
    };
}

const BUNDLED: &[(&str, &str)] = bundled![
    "account-locked",
    "api-keys",
    "api-pagination",
    "api-rate-limits",
    "audit-log",
    "browser-support",
    "cancel-subscription",
    "change-email",
    "change-password",
    "change-plan",
    "custom-fields",
    "data-retention-and-privacy",
    "delete-account",
    "export-data",
    "export-time-reports",
    "github-integration",
    "google-calendar-integration",
    "import-data",
    "invite-members",
    "invoices",
    "mobile-app",
    "notifications",
    "payment-methods",
    "plans-and-pricing",
    "recurring-tasks",
    "refunds",
    "reset-password",
    "roles-and-permissions",
    "seats-and-billing",
    "service-status",
    "single-sign-on",
    "slack-integration",
    "storage-limits",
    "time-tracking",
    "transfer-ownership",
    "two-factor-authentication",
    "webhooks",
];

/// One paragraph of a document: the unit that is indexed, retrieved and placed in prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// `<doc-slug>#<n>`, `n` counting paragraphs after the title from 0.
    pub id: String,
    /// The slug of the document the chunk comes from.
    pub doc_slug: String,
    /// The title of that document.
    pub doc_title: String,
    /// The paragraph's position in its document, from 0.
    pub position: usize,
    /// The paragraph text.
    pub text: String,
}

/// Why a corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    /// The directory or a file in it could not be read.
    #[error("cannot read corpus file {path}")]
    Read {
        /// The path that failed.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The corpus has no chunks.
    #[error("the corpus is empty")]
    Empty,
}

/// Chunked documents and the version of the index built from them.
#[derive(Clone)]
pub struct Corpus {
    chunks: Vec<Chunk>,
    version: String,
}

impl fmt::Debug for Corpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Corpus")
            .field("chunks", &self.chunks.len())
            .field("version", &self.version)
            .finish()
    }
}

impl Corpus {
    /// The help-center documents bundled with this example (a fictional product, Tallyhive).
    pub fn bundled() -> Self {
        Self::from_documents(BUNDLED.iter().map(|(slug, text)| (*slug, *text)))
            .unwrap_or_else(|_| unreachable!("the bundled corpus is not empty"))
    }

    /// Reads every `*.md` file of `dir`; the slug is the file stem.
    pub fn from_dir(dir: &Path) -> Result<Self, CorpusError> {
        let read_err = |path: &Path, source| CorpusError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut docs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
            let path = entry.map_err(|e| read_err(dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "md") {
                let Some(slug) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
                docs.push((slug.to_owned(), text));
            }
        }
        Self::from_documents(docs.iter().map(|(s, t)| (s.as_str(), t.as_str())))
    }

    /// Chunks `(slug, markdown)` documents. Documents are sorted by slug first, so the chunk
    /// order and the index version do not depend on the order they are given in.
    pub fn from_documents<'a>(
        docs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CorpusError> {
        let mut docs: Vec<(&str, &str)> = docs.into_iter().collect();
        docs.sort_by(|a, b| a.0.cmp(b.0));
        let mut hasher = Sha256::new();
        let mut chunks = Vec::new();
        for (slug, markdown) in docs {
            let (title, paragraphs) = split_document(slug, markdown);
            for (n, text) in paragraphs.into_iter().enumerate() {
                hasher.update(slug.as_bytes());
                hasher.update([0]);
                hasher.update(text.as_bytes());
                hasher.update([0]);
                chunks.push(Chunk {
                    id: format!("{slug}#{n}"),
                    doc_slug: slug.to_owned(),
                    doc_title: title.clone(),
                    position: n,
                    text,
                });
            }
        }
        if chunks.is_empty() {
            return Err(CorpusError::Empty);
        }
        let digest = hex::encode(hasher.finalize());
        Ok(Corpus {
            chunks,
            version: format!("bm25-para-{}", &digest[..12]),
        })
    }

    /// All chunks, by document slug and paragraph.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The chunk with this ID.
    pub fn chunk(&self, id: &str) -> Option<&Chunk> {
        self.chunks.iter().find(|c| c.id == id)
    }

    /// `bm25-para-` and the first 12 hex digits of a SHA-256 over every chunk's slug and text:
    /// any edit, added or removed document, or change of chunking yields a new version
    /// (`closedloop.retrieval.index.version`).
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Splits Markdown into its `# ` title (the slug if there is none) and its paragraphs, joined
/// onto one line each. Other headings are dropped.
fn split_document(slug: &str, markdown: &str) -> (String, Vec<String>) {
    let mut title = None;
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut flush = |current: &mut Vec<&str>| {
        if !current.is_empty() {
            paragraphs.push(current.join(" "));
            current.clear();
        }
    };
    for line in markdown.lines() {
        let line = line.trim();
        if line.is_empty() {
            flush(&mut current);
        } else if let Some(heading) = line.strip_prefix("# ") {
            flush(&mut current);
            title.get_or_insert_with(|| heading.trim().to_owned());
        } else if line.starts_with('#') {
            flush(&mut current);
        } else {
            current.push(line);
        }
    }
    flush(&mut current);
    (title.unwrap_or_else(|| slug.to_owned()), paragraphs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_list_matches_the_corpus_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let from_dir = Corpus::from_dir(&dir).unwrap();
        let bundled = Corpus::bundled();
        assert_eq!(from_dir.chunks(), bundled.chunks());
        assert_eq!(from_dir.version(), bundled.version());
    }

    #[test]
    fn chunk_ids_are_slug_and_paragraph_number() {
        let corpus = Corpus::from_documents([
            ("b-doc", "# B\n\nfirst para\ncontinues\n\n\nsecond para\n"),
            ("a-doc", "# A\n\nonly para"),
        ])
        .unwrap();
        let ids: Vec<&str> = corpus.chunks().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a-doc#0", "b-doc#0", "b-doc#1"]);
        assert_eq!(
            corpus.chunk("b-doc#0").unwrap().text,
            "first para continues"
        );
        assert_eq!(corpus.chunk("b-doc#1").unwrap().doc_title, "B");
    }

    #[test]
    fn chunk_ids_and_version_are_stable_across_input_order_and_change_with_content() {
        let a =
            Corpus::from_documents([("x", "# X\n\none\n\ntwo"), ("y", "# Y\n\nthree")]).unwrap();
        let b =
            Corpus::from_documents([("y", "# Y\n\nthree"), ("x", "# X\n\none\n\ntwo")]).unwrap();
        assert_eq!(a.chunks(), b.chunks());
        assert_eq!(a.version(), b.version());
        let edited =
            Corpus::from_documents([("x", "# X\n\none\n\ntwo!"), ("y", "# Y\n\nthree")]).unwrap();
        assert_ne!(a.version(), edited.version());
        assert!(a.version().starts_with("bm25-para-"));
    }

    #[test]
    fn bundled_corpus_has_known_stable_chunk_ids() {
        let corpus = Corpus::bundled();
        let reset = corpus.chunk("reset-password#0").unwrap();
        assert!(reset.text.contains("Forgot password?"));
        assert!(corpus
            .chunk("reset-password#3")
            .unwrap()
            .text
            .contains("single sign-on"));
        assert!(corpus
            .chunk("api-rate-limits#1")
            .unwrap()
            .text
            .contains("429"));
        assert!(corpus.chunks().len() > 90);
    }

    #[test]
    fn empty_corpus_is_an_error() {
        assert!(matches!(
            Corpus::from_documents([("x", "# Only a title")]),
            Err(CorpusError::Empty)
        ));
    }
}
