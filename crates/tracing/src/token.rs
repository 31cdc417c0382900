//! Signed, expiring feedback tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use opentelemetry::trace::{SpanId, TraceId};
use sha2::{Digest, Sha256};

use crate::ResponseRef;

/// The version byte of the token layout this crate writes.
const VERSION: u8 = 1;
/// Version, trace id, span id, expiry.
const PAYLOAD_LEN: usize = 1 + 16 + 8 + 8;
/// HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;

/// Why a feedback token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not base64url, the wrong length, or carrying an invalid trace or span id or an expiry
    /// past what the system clock can represent.
    #[error("malformed feedback token")]
    Malformed,
    /// A version this crate does not know.
    #[error("unsupported feedback token version {0}")]
    UnsupportedVersion(u8),
    /// The signature does not match: forged, tampered with, or signed with another secret.
    #[error("feedback token signature does not match")]
    BadSignature,
    /// Correctly signed, but past its expiry.
    #[error("feedback token expired")]
    Expired,
}

/// A feedback token whose signature and expiry were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    trace_id: TraceId,
    span_id: SpanId,
    expires_at: SystemTime,
}

impl VerifiedToken {
    /// The trace of the judged response.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The judged response span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// When the token stops being accepted (whole seconds).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The response the token grants feedback on, to pass to
    /// [`record_feedback`](crate::record_feedback).
    pub fn response_ref(&self) -> ResponseRef {
        ResponseRef::from_valid_ids(self.trace_id, self.span_id, true)
    }
}

/// HMAC-SHA256 keyed with `secret`, built without a fallible constructor: the key block is
/// derived as RFC 2104 specifies (hashed when longer than the 64-byte block, zero-padded).
pub(crate) fn mac(secret: &[u8]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    if secret.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// Signs a token granting feedback on one response span until `expires_at`.
///
/// The token is base64url (no padding) of a version byte, the trace id, the span id, the expiry
/// in Unix seconds (big-endian) and an HMAC-SHA256 over those bytes with `secret`. Expiry is
/// rounded down to whole seconds.
pub fn issue_feedback_token(
    secret: &[u8],
    trace_id: TraceId,
    span_id: SpanId,
    expires_at: SystemTime,
) -> String {
    let expiry = expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut bytes = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&trace_id.to_bytes());
    bytes.extend_from_slice(&span_id.to_bytes());
    bytes.extend_from_slice(&expiry.to_be_bytes());
    let mut mac = mac(secret);
    mac.update(&bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a feedback token: its layout, its signature (compared in constant time), then its
/// expiry against `now`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use closedloop_tracing::{issue_feedback_token, verify_feedback_token, TokenError};
/// use opentelemetry::trace::{SpanId, TraceId};
///
/// let secret = b"a shared secret of at least 32 bytes!";
/// let now = SystemTime::now();
/// let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")?;
/// let span_id = SpanId::from_hex("00f067aa0ba902b7")?;
/// let token = issue_feedback_token(secret, trace_id, span_id, now + Duration::from_secs(3600));
///
/// let verified = verify_feedback_token(secret, &token, now)?;
/// assert_eq!(verified.span_id(), span_id);
/// assert_eq!(
///     verify_feedback_token(b"another secret", &token, now),
///     Err(TokenError::BadSignature)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_feedback_token(
    secret: &[u8],
    token: &str,
    now: SystemTime,
) -> Result<VerifiedToken, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| TokenError::Malformed)?;
    let Some(&version) = bytes.first() else {
        return Err(TokenError::Malformed);
    };
    if version != VERSION {
        return Err(TokenError::UnsupportedVersion(version));
    }
    if bytes.len() != PAYLOAD_LEN + TAG_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
    let mut mac = mac(secret);
    mac.update(payload);
    mac.verify_slice(tag)
        .map_err(|_| TokenError::BadSignature)?;

    let trace_id = TraceId::from_bytes(
        payload[1..17]
            .try_into()
            .map_err(|_| TokenError::Malformed)?,
    );
    let span_id = SpanId::from_bytes(
        payload[17..25]
            .try_into()
            .map_err(|_| TokenError::Malformed)?,
    );
    let expiry = u64::from_be_bytes(
        payload[25..33]
            .try_into()
            .map_err(|_| TokenError::Malformed)?,
    );
    // A signed expiry past what `SystemTime` holds is refused, not added (which panics).
    let expires_at = UNIX_EPOCH
        .checked_add(Duration::from_secs(expiry))
        .ok_or(TokenError::Malformed)?;
    if now >= expires_at {
        return Err(TokenError::Expired);
    }
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return Err(TokenError::Malformed);
    }
    Ok(VerifiedToken {
        trace_id,
        span_id,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ids() -> (TraceId, SpanId) {
        (
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_good_token_passes_until_it_expires() {
        let (trace_id, span_id) = ids();
        let token = issue_feedback_token(SECRET, trace_id, span_id, at(2_000));
        let verified = verify_feedback_token(SECRET, &token, at(1_999)).unwrap();
        assert_eq!(verified.trace_id(), trace_id);
        assert_eq!(verified.span_id(), span_id);
        assert_eq!(verified.expires_at(), at(2_000));
        assert_eq!(
            verify_feedback_token(SECRET, &token, at(2_000)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_tampered_token_fails_in_every_byte() {
        let (trace_id, span_id) = ids();
        let token = issue_feedback_token(SECRET, trace_id, span_id, at(2_000));
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 1..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            let tampered = URL_SAFE_NO_PAD.encode(tampered);
            assert_eq!(
                verify_feedback_token(SECRET, &tampered, at(1_000)),
                Err(TokenError::BadSignature),
                "byte {i}"
            );
        }
    }

    /// Found by the `feedback_token` fuzz target: the addition used to panic.
    #[test]
    fn a_signed_expiry_past_the_clock_is_refused() {
        let (trace_id, span_id) = ids();
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&trace_id.to_bytes());
        bytes.extend_from_slice(&span_id.to_bytes());
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut signer = mac(SECRET);
        signer.update(&bytes);
        bytes.extend_from_slice(&signer.finalize().into_bytes());
        let token = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            verify_feedback_token(SECRET, &token, at(1_000)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_forged_token_for_another_span_fails() {
        let (trace_id, _) = ids();
        let other = SpanId::from_hex("1111111111111111").unwrap();
        let forged = issue_feedback_token(b"guessed secret", trace_id, other, at(9_999));
        assert_eq!(
            verify_feedback_token(SECRET, &forged, at(1_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn the_mac_matches_the_standard_construction_for_short_and_long_keys() {
        for key in [&b"k"[..], &[7u8; 64][..], &[9u8; 100][..]] {
            let mut ours = mac(key);
            let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            ours.update(b"payload");
            reference.update(b"payload");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn malformed_tokens_are_reported_as_such() {
        assert_eq!(
            verify_feedback_token(SECRET, "not base64!", at(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify_feedback_token(SECRET, "", at(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify_feedback_token(SECRET, &URL_SAFE_NO_PAD.encode([1u8; 10]), at(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify_feedback_token(SECRET, &URL_SAFE_NO_PAD.encode([2u8; 65]), at(0)),
            Err(TokenError::UnsupportedVersion(2))
        );
    }
}
