//! Precision and recall of the rephrase detector on the labelled pairs of consecutive queries
//! in `tests/fixtures/rephrase_pairs.jsonl`, at the default `[detectors.rephrase]` thresholds:
//! with content capture off (query fingerprints only) and on (query texts), with a threshold
//! sweep for each. Not a timing benchmark: run with
//! `cargo bench -p closedloop-receiver --bench rephrase`.
//!
//! `CLOSEDLOOP_REPHRASE_PAIRS=<file>` scores another file of the same JSON Lines format instead,
//! for example `tests/fixtures/rephrase_pairs_holdout.jsonl` or a team's own labelled pairs.

use closedloop_receiver::DetectorsConfig;
use closedloop_tracing::{fingerprint, query_similarity};
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
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }

    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1))
    }
}

fn count(scores: &[(f64, bool)], threshold: f64) -> Counts {
    let mut counts = Counts::default();
    for &(score, rephrase) in scores {
        match (score >= threshold, rephrase) {
            (true, true) => counts.tp += 1,
            (true, false) => counts.fp += 1,
            (false, true) => counts.fn_ += 1,
            (false, false) => counts.tn += 1,
        }
    }
    counts
}

fn report(name: &str, pairs: &[Pair], scores: &[(f64, bool)], threshold: f64) {
    let counts = count(scores, threshold);
    println!(
        "{name}: threshold {threshold:.2}: precision {:.3} recall {:.3} (tp {} fp {} fn {} tn {})",
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
        let c = count(scores, t);
        sweep.push_str(&format!(
            "  {t:.2}: P {:.2} R {:.2}\n",
            c.precision(),
            c.recall()
        ));
    }
    print!("{name}: sweep\n{sweep}");
    // Errors by kind at the configured threshold.
    let mut kinds: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for (pair, &(score, rephrase)) in pairs.iter().zip(scores) {
        let entry = kinds.entry(pair.kind.as_str()).or_default();
        entry.0 += 1;
        if (score >= threshold) != rephrase {
            entry.1 += 1;
        }
    }
    let errors: Vec<String> = kinds
        .iter()
        .map(|(kind, (total, wrong))| format!("{kind} {wrong}/{total}"))
        .collect();
    println!("{name}: wrong by kind: {}", errors.join(", "));
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
    let config = DetectorsConfig::default();

    // Content off: what the spans carry is `closedloop.query.fingerprint`, as written by
    // closedloop-tracing and parsed back by the receiver.
    let off: Vec<(f64, bool)> = pairs
        .iter()
        .map(|pair| {
            let a: closedloop_tracing::Fingerprint = fingerprint(&pair.previous)
                .to_string()
                .parse()
                .expect("parses");
            let b: closedloop_tracing::Fingerprint =
                fingerprint(&pair.next).to_string().parse().expect("parses");
            (a.similarity(&b).unwrap_or(0.0), pair.rephrase)
        })
        .collect();
    report(
        "content off (mh64v2 fingerprints)",
        &pairs,
        &off,
        config.rephrase.threshold,
    );

    // Content on: `closedloop.query.text` on both spans.
    let on: Vec<(f64, bool)> = pairs
        .iter()
        .map(|pair| {
            (
                query_similarity(&pair.previous, &pair.next).unwrap_or(0.0),
                pair.rephrase,
            )
        })
        .collect();
    report(
        "content on (query text)",
        &pairs,
        &on,
        config.rephrase.text_threshold,
    );
}
