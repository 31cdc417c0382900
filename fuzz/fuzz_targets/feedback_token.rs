//! Feedback tokens: `verify_feedback_token` on any text and on any payload signed with the
//! secret (what a client holding a token, or another minting implementation, can send), and
//! the round trip: a token minted for a span verifies for that span only, until it expires,
//! and not after any bit of it changed.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use closedloop_tracing::{issue_feedback_token, verify_feedback_token, TokenError};
use hmac::{Hmac, Mac};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::{SpanId, TraceId};
use sha2::Sha256;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a [u8],
    /// Any text, checked as a token.
    text: &'a str,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    other_trace_id: [u8; 16],
    other_span_id: [u8; 8],
    ttl_secs: u32,
    tamper_bit: u16,
    /// A payload in the token layout, signed here with the secret.
    signed_version: u8,
    signed_trace_id: [u8; 16],
    signed_span_id: [u8; 8],
    signed_expiry_secs: u64,
}

/// A fixed clock, so that a failing input replays.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn sign(secret: &[u8], payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(payload);
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fuzz_target!(|input: Input<'_>| {
    let now = now();
    let _ = verify_feedback_token(input.secret, input.text, now);

    let mut payload = vec![input.signed_version];
    payload.extend_from_slice(&input.signed_trace_id);
    payload.extend_from_slice(&input.signed_span_id);
    payload.extend_from_slice(&input.signed_expiry_secs.to_be_bytes());
    if let Ok(verified) = verify_feedback_token(input.secret, &sign(input.secret, &payload), now) {
        assert_eq!(verified.trace_id().to_bytes(), input.signed_trace_id);
        assert_eq!(verified.span_id().to_bytes(), input.signed_span_id);
        assert!(verified.expires_at() > now);
    }

    let (trace_id, span_id) = (
        TraceId::from_bytes(input.trace_id),
        SpanId::from_bytes(input.span_id),
    );
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return;
    }
    let expires_at = now + Duration::from_secs(u64::from(input.ttl_secs) + 1);
    let token = issue_feedback_token(input.secret, trace_id, span_id, expires_at);
    let verified =
        verify_feedback_token(input.secret, &token, now).expect("a fresh token verifies");
    assert_eq!(
        (verified.trace_id(), verified.span_id()),
        (trace_id, span_id)
    );
    if (input.other_trace_id, input.other_span_id) != (input.trace_id, input.span_id) {
        assert_ne!(
            (
                verified.trace_id().to_bytes(),
                verified.span_id().to_bytes()
            ),
            (input.other_trace_id, input.other_span_id),
            "a token verifies for the span it was minted for only"
        );
    }
    assert_eq!(
        verify_feedback_token(input.secret, &token, expires_at),
        Err(TokenError::Expired)
    );

    let mut bytes = URL_SAFE_NO_PAD
        .decode(&token)
        .expect("tokens are base64url");
    let bit = usize::from(input.tamper_bit) % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    let tampered = URL_SAFE_NO_PAD.encode(&bytes);
    assert!(
        verify_feedback_token(input.secret, &tampered, now).is_err(),
        "a token with bit {bit} flipped still verifies"
    );
});
