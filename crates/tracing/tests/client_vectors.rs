//! The test vectors the Python and JavaScript clients check themselves against
//! (`clients/testdata/vectors.json`): feedback tokens, query fingerprints, template versions
//! and semantic fingerprints, as this crate computes them.
//!
//! The file is checked here, so a change to any of them in Rust fails until the file is
//! regenerated (`CLOSEDLOOP_UPDATE_VECTORS=1 cargo test -p closedloop-tracing --test
//! client_vectors`) and the clients follow.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use closedloop_tracing::{
    fingerprint, issue_feedback_token, PromptTemplate, SemanticFingerprint, SemanticHasher,
};
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::{json, Value};

const SECRETS: &[&str] = &[
    "0123456789abcdef0123456789abcdef",
    "a shared secret of at least 32 bytes!",
    // Longer than the HMAC block (64 bytes): the key is hashed first.
    "a very long feedback secret that is longer than the sixty-four byte block of sha-256",
];

const IDS: &[(&str, &str, u64)] = &[
    (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        1_767_225_600,
    ),
    (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        4_102_444_800,
    ),
    ("00000000000000000000000000000001", "0000000000000001", 1),
];

const QUERIES: &[&str] = &[
    "How do I reset my password?",
    "password reset steps",
    "Which plans include SSO?",
    "How do I turn on two-factor authentication?",
    "how do i turn off 2FA",
    "Can I set up single sign-on with Okta?",
    "I want to cancel my subscription",
    "How many vacation days do I get?",
    "paid time off policy",
    "connect Google Calendar",
    "connect Outlook calendar",
    "What's the refund policy for annual plans???",
    "Log in doesn't work — error 403 on /api/v2/login",
    "  spaces   and\ttabs\nand newlines  ",
    "ÉLÈVE café naïve coöperate",
    "Straße GROSS İstanbul",
    "日本語の質問はどうですか",
    "emoji 🎉 party 🚀 launch",
    "the and of a to",
    "",
    "?!.,;:",
    "a",
    "running runs ran runner",
    "invoices invoice invoicing billed billing bills",
    "How do I export my data to CSV and Excel files from the reports dashboard?",
    "upgrade downgrade change plan",
    "delete account remove user deactivate",
    "API key rotate regenerate token",
    "x1 x2 x3 v2.0 3.14",
    "Why was I charged twice this month on my credit card?",
    "How do I unfreeze my card and unlock my account?",
    "hide SHOW unhide; log out, then sign in: accepts/declines",
];

const TEMPLATES: &[&str] = &[
    "You are a helpful assistant. Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}",
    "",
    "Résumé: {text} 🎉",
];

/// A fixed embedding of exact binary fractions, as the crate's own unit tests use.
fn ramp(dimensions: usize, shift: usize) -> Vec<f32> {
    (0..dimensions)
        .map(|i| ((i * 37 + shift) % 101) as f32 / 64.0 - 0.78125)
        .collect()
}

/// A unit-length embedding of pseudo-random values, like a sentence model's output: most
/// values are not short binary fractions. Only integer arithmetic and correctly rounded f32
/// operations, so every platform writes the same numbers.
fn unit_random(dimensions: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let raw: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.iter().map(|x| x / norm).collect()
}

/// The semantic fingerprint cases: model, embedding.
fn semantic_cases() -> Vec<(&'static str, Vec<f32>)> {
    let query = unit_random(384, 1);
    let paraphrase: Vec<f32> = query
        .iter()
        .zip(unit_random(384, 2))
        .map(|(a, b)| 0.9 * a + 0.1 * b)
        .collect();
    vec![
        ("test-model", ramp(8, 0)),
        ("all-MiniLM-L6-v2", ramp(384, 5)),
        ("all-MiniLM-L6-v2", query),
        ("all-MiniLM-L6-v2", paraphrase),
        // Negative values only.
        (
            "test-model",
            (0..16)
                .map(|i| -(((i * 7) % 13 + 1) as f32) / 16.0)
                .collect(),
        ),
        // Tiny values, subnormals among them: the sums are still exact in f64.
        (
            "test-model",
            vec![
                1e-30,
                -2.5e-31,
                f32::from_bits(1),
                -f32::from_bits(3),
                f32::MIN_POSITIVE,
                -f32::MIN_POSITIVE * 3.0,
                7e-39,
                -1e-35,
                4e-32,
                0.0,
                -6e-30,
                3e-33,
                -f32::from_bits(0x0000_ffff),
                9e-31,
                -1.5e-30,
                2e-38,
            ],
        ),
        // A non-ASCII name (hashed as UTF-8), zeros of both signs and a wide range of scales.
        ("modèle-ß", vec![0.0, 1e30, -3.5e29, -0.0, 7.25]),
        // One dimension: every plane is the value or its opposite.
        ("m", vec![-2.0]),
    ]
}

fn semantic_vectors() -> (Vec<Value>, Vec<Value>) {
    let fingerprints: Vec<SemanticFingerprint> = semantic_cases()
        .iter()
        .map(|(model, embedding)| {
            SemanticHasher::new(model, embedding.len())
                .unwrap()
                .fingerprint(embedding)
                .unwrap()
        })
        .collect();
    let cases = semantic_cases()
        .iter()
        .zip(&fingerprints)
        .map(|((model, embedding), fingerprint)| {
            // As f64, each value is written exactly: no client has to round a decimal.
            let values: Vec<f64> = embedding.iter().map(|x| f64::from(*x)).collect();
            json!({
                "model": model,
                "embedding": values,
                "fingerprint": fingerprint.to_string(),
            })
        })
        .collect();
    // A paraphrase, two unrelated queries of one model, and two models (never compared).
    let similarities = [(2, 3), (1, 2), (2, 2), (0, 1)]
        .iter()
        .map(|&(a, b): &(usize, usize)| {
            let (a, b) = (&fingerprints[a], &fingerprints[b]);
            json!({
                "a": a.to_string(),
                "b": b.to_string(),
                "hamming": a.hamming(b),
                "similarity": a.similarity(b),
            })
        })
        .collect();
    (cases, similarities)
}

fn vectors() -> Value {
    let mut tokens = Vec::new();
    for secret in SECRETS {
        for &(trace_id, span_id, expires) in IDS {
            let token = issue_feedback_token(
                secret.as_bytes(),
                TraceId::from_hex(trace_id).unwrap(),
                SpanId::from_hex(span_id).unwrap(),
                UNIX_EPOCH + Duration::from_secs(expires),
            );
            tokens.push(json!({
                "secret": secret,
                "trace_id": trace_id,
                "span_id": span_id,
                "expires_at_unix": expires,
                "token": token,
            }));
        }
    }
    let fingerprints: Vec<Value> = QUERIES
        .iter()
        .map(|query| json!({ "query": query, "fingerprint": fingerprint(query).to_string() }))
        .collect();
    let templates: Vec<Value> = TEMPLATES
        .iter()
        .map(|text| {
            let template = PromptTemplate::new("t", *text);
            json!({ "text": text, "hash": template.hash(), "version": template.version() })
        })
        .collect();
    let (semantic_fingerprints, semantic_similarities) = semantic_vectors();
    json!({
        "about": "Generated by crates/tracing/tests/client_vectors.rs; the Python and JavaScript clients must reproduce every value.",
        "tokens": tokens,
        "fingerprints": fingerprints,
        "templates": templates,
        "semantic_fingerprints": semantic_fingerprints,
        "semantic_similarities": semantic_similarities,
    })
}

#[test]
fn the_client_vectors_match_this_crate() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/testdata/vectors.json");
    let want = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("CLOSEDLOOP_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: regenerate it with CLOSEDLOOP_UPDATE_VECTORS=1",
        path.display()
    );
}
