//! Precision and recall of the rephrase detector on labelled pairs of consecutive queries
//! (`tests/fixtures/rephrase_pairs.jsonl` by default), at the default `[detectors.rephrase]`
//! settings, for each way the receiver compares queries:
//!
//! - lexical: `mh64v3` fingerprints (content capture off) and query texts (content on), with
//!   the contrast check (a swap of opposite actions is a different question);
//! - semantic: `sh512` fingerprints of the bundled `all-MiniLM-L6-v2` embeddings;
//! - combined: semantic with the lexical rescue (`semantic_lexical_threshold`,
//!   `semantic_floor`) and the contrast check, as the detector runs when both queries carry a
//!   semantic fingerprint.
//!
//! Each with a threshold sweep, then the per-query cost of a semantic fingerprint (embedding
//! with the bundled model; hashing an application's vector). Not a timing benchmark for the
//! scores: run with `cargo bench -p closedloop-receiver --bench rephrase`.
//!
//! `CLOSEDLOOP_REPHRASE_PAIRS=<file>` scores another file of the same JSON Lines format, for
//! example `tests/fixtures/rephrase_pairs_holdout.jsonl` or a team's own labelled pairs. The
//! model is found as the receiver finds it (`CLOSEDLOOP_EMBEDDING_MODEL_DIR`, or
//! `target/models`, where `scripts/embedding-model.sh` installs it); without it only the
//! lexical detectors are scored.

use std::path::PathBuf;
use std::time::Instant;

use closedloop_embed::{find_model_dir, Embedder, MODEL_NAME};
use closedloop_receiver::{DetectorsConfig, QueryComparison, RephraseDetectorConfig};
use closedloop_tracing::{
    fingerprint, queries_contrast, query_similarity, Fingerprint, SemanticHasher,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Pair {
    previous: String,
    next: String,
    rephrase: bool,
    kind: String,
}

#[derive(Default)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
}

impl Counts {
    fn of(judged: impl Iterator<Item = (bool, bool)>) -> Self {
        let mut counts = Counts::default();
        for (said, rephrase) in judged {
            match (said, rephrase) {
                (true, true) => counts.tp += 1,
                (true, false) => counts.fp += 1,
                (false, true) => counts.fn_ += 1,
                (false, false) => counts.tn += 1,
            }
        }
        counts
    }

    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }

    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1))
    }
}

/// What the bench knows of one pair.
struct Scored<'a> {
    pair: &'a Pair,
    fingerprints: Option<f64>,
    /// Whether the fingerprints' contrast marks say the queries swap opposite actions.
    fingerprints_contrast: bool,
    text: Option<f64>,
    /// Whether the texts swap opposite actions.
    text_contrast: bool,
    semantic: Option<f64>,
}

/// A verdict on a pair at a threshold (`None`: the default one).
type Judge<'a> = Box<dyn Fn(&Scored<'_>, Option<f64>) -> bool + 'a>;

/// One way of judging pairs: its name, and its verdicts.
struct Detector<'a> {
    name: &'a str,
    judge: Judge<'a>,
    default_threshold: f64,
}

fn report(detector: &Detector<'_>, scored: &[Scored<'_>]) {
    let counts = Counts::of(
        scored
            .iter()
            .map(|s| ((detector.judge)(s, None), s.pair.rephrase)),
    );
    println!(
        "{}: default (threshold {:.2}): precision {:.3} recall {:.3} (tp {} fp {} fn {} tn {})",
        detector.name,
        detector.default_threshold,
        counts.precision(),
        counts.recall(),
        counts.tp,
        counts.fp,
        counts.fn_,
        counts.tn
    );
    let mut sweep = String::new();
    for step in 10..=19 {
        let t = f64::from(step) * 0.05;
        let c = Counts::of(
            scored
                .iter()
                .map(|s| ((detector.judge)(s, Some(t)), s.pair.rephrase)),
        );
        sweep.push_str(&format!(
            "  {t:.2}: P {:.2} R {:.2}\n",
            c.precision(),
            c.recall()
        ));
    }
    print!("{}: sweep\n{sweep}", detector.name);
    let mut kinds: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for s in scored {
        let entry = kinds.entry(s.pair.kind.as_str()).or_default();
        entry.0 += 1;
        if (detector.judge)(s, None) != s.pair.rephrase {
            entry.1 += 1;
        }
    }
    let errors: Vec<String> = kinds
        .iter()
        .map(|(kind, (total, wrong))| format!("{kind} {wrong}/{total}"))
        .collect();
    println!("{}: wrong by kind: {}", detector.name, errors.join(", "));
}

/// The detector's verdict from fingerprints or texts (`from_text`), with the semantic
/// similarity when `semantic`; the threshold that decides (the semantic one, or the lexical
/// one without a semantic similarity) replaced by `threshold` when given.
fn verdict(
    config: &RephraseDetectorConfig,
    from_text: bool,
    semantic: bool,
) -> impl Fn(&Scored<'_>, Option<f64>) -> bool + '_ {
    move |s, threshold| {
        let mut config = config.clone();
        if let Some(t) = threshold {
            match (semantic, from_text) {
                (true, _) => config.semantic_threshold = t,
                (false, true) => config.text_threshold = t,
                (false, false) => config.threshold = t,
            }
        }
        let (lexical, contrast) = if from_text {
            (s.text, s.text_contrast)
        } else {
            (s.fingerprints, s.fingerprints_contrast)
        };
        config.rephrases(&QueryComparison {
            lexical,
            from_text,
            semantic: if semantic { s.semantic } else { None },
            contrast,
        })
    }
}

fn main() {
    let text = match std::env::var_os("CLOSEDLOOP_REPHRASE_PAIRS") {
        Some(path) => std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.to_string_lossy())),
        None => include_str!("../tests/fixtures/rephrase_pairs.jsonl").to_owned(),
    };
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("fixture line parses"))
        .collect();
    let positives = pairs.iter().filter(|pair| pair.rephrase).count();
    println!(
        "{} labelled pairs ({positives} rephrasings, {} not)",
        pairs.len(),
        pairs.len() - positives
    );
    let config = DetectorsConfig::default().rephrase;

    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models");
    let embedder = find_model_dir(&[target]).map(|dir| {
        Embedder::load(&dir)
            .expect("the embedding model loads")
            .with_model_name(MODEL_NAME)
    });
    let hasher = embedder
        .as_ref()
        .map(|e| SemanticHasher::new(e.model_name(), e.dimensions()).expect("a valid model name"));
    if embedder.is_none() {
        println!("no embedding model (scripts/embedding-model.sh installs it): lexical only");
    }

    // What the spans carry, written by closedloop-tracing and parsed back by the receiver.
    let fingerprints = |a: &str, b: &str| {
        let a: Fingerprint = fingerprint(a).to_string().parse().expect("parses");
        let b: Fingerprint = fingerprint(b).to_string().parse().expect("parses");
        (a.similarity(&b), a.contrasts(&b))
    };
    let semantic = |a: &str, b: &str| {
        let (embedder, hasher) = (embedder.as_ref()?, hasher.as_ref()?);
        let a = hasher.fingerprint(&embedder.embed(a)).ok()?.to_string();
        let b = hasher.fingerprint(&embedder.embed(b)).ok()?.to_string();
        let a: closedloop_tracing::SemanticFingerprint = a.parse().expect("parses");
        a.similarity(&b.parse().expect("parses"))
    };
    let scored: Vec<Scored<'_>> = pairs
        .iter()
        .map(|pair| {
            let (similarity, contrast) = fingerprints(&pair.previous, &pair.next);
            Scored {
                pair,
                fingerprints: similarity,
                fingerprints_contrast: contrast,
                text: query_similarity(&pair.previous, &pair.next),
                text_contrast: queries_contrast(&pair.previous, &pair.next),
                semantic: semantic(&pair.previous, &pair.next),
            }
        })
        .collect();

    let mut detectors = vec![
        Detector {
            name: "lexical, content off (mh64v3 fingerprints)",
            judge: Box::new(verdict(&config, false, false)),
            default_threshold: config.threshold,
        },
        Detector {
            name: "lexical, content on (query texts)",
            judge: Box::new(verdict(&config, true, false)),
            default_threshold: config.text_threshold,
        },
    ];
    if embedder.is_some() {
        let semantic_threshold = config.semantic_threshold;
        detectors.push(Detector {
            name: "semantic alone (sh512 of all-MiniLM-L6-v2, no contrast check)",
            judge: Box::new(move |s: &Scored<'_>, threshold: Option<f64>| {
                s.semantic
                    .is_some_and(|v| v >= threshold.unwrap_or(semantic_threshold))
            }),
            default_threshold: config.semantic_threshold,
        });
        detectors.push(Detector {
            name: "combined, content off (sh512 + mh64v3)",
            judge: Box::new(verdict(&config, false, true)),
            default_threshold: config.semantic_threshold,
        });
        detectors.push(Detector {
            name: "combined, content on (sh512 + texts)",
            judge: Box::new(verdict(&config, true, true)),
            default_threshold: config.semantic_threshold,
        });
    }
    for detector in &detectors {
        report(detector, &scored);
    }

    // The cost of a semantic fingerprint per query.
    if let (Some(embedder), Some(hasher)) = (&embedder, &hasher) {
        let queries: Vec<&str> = pairs
            .iter()
            .flat_map(|p| [p.previous.as_str(), p.next.as_str()])
            .collect();
        let started = Instant::now();
        let vectors: Vec<Vec<f32>> = queries.iter().map(|q| embedder.embed(q)).collect();
        let embed = started.elapsed() / queries.len() as u32;
        let rounds = 20;
        let started = Instant::now();
        for _ in 0..rounds {
            for vector in &vectors {
                std::hint::black_box(hasher.fingerprint(vector).expect("hashes"));
            }
        }
        let hash = started.elapsed() / (rounds * vectors.len()) as u32;
        let started = Instant::now();
        for q in &queries {
            std::hint::black_box(fingerprint(q));
        }
        let lexical = started.elapsed() / queries.len() as u32;
        // An application's own, larger vector (text-embedding-3-small has 1536 dimensions).
        let large = SemanticHasher::new("text-embedding-3-small", 1536).expect("a valid name");
        let vector: Vec<f32> = (0..1536)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let started = Instant::now();
        for _ in 0..200 {
            std::hint::black_box(large.fingerprint(&vector).expect("hashes"));
        }
        let hash_large = started.elapsed() / 200;
        println!(
            "cost per query, one core: bundled model embedding {embed:?} + sh512 hash {hash:?} \
             (an application's own vector: the hash only; {hash_large:?} for 1536 dimensions); \
             mh64v3 fingerprint {lexical:?}"
        );
    }
}
