//! Locks that keep two receivers on one PostgreSQL from writing the same thing at once.

use crate::connection::Connection;
use crate::error::Result;
use crate::records::{SpanRef, TraceId};

/// Something two transactions must not write at the same moment (a response span, a
/// `gen_ai.response.id`, a session), as a 64-bit key. Keys of different kinds never name the
/// same thing: each kind hashes its own tag with the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockKey(i64);

impl LockKey {
    /// The key as the engine takes it.
    pub(crate) fn raw(self) -> i64 {
        self.0
    }

    /// The response span `span` (its feedback, its failure record).
    pub fn span(span: &SpanRef) -> Self {
        Self(key(b's', &[&span.trace_id[..], &span.span_id[..]]))
    }

    /// The trace `trace_id`: its responses, span aliases and the waiting feedback naming any
    /// of its spans (feedback resolved to the trace's last response, nested LLM spans folded
    /// into one response).
    pub fn trace(trace_id: &TraceId) -> Self {
        Self(key(b't', &[&trace_id[..]]))
    }

    /// The responses and feedback that name `response_id`.
    pub fn response_id(response_id: &str) -> Self {
        Self(key(b'r', &[response_id.as_bytes()]))
    }

    /// The turns of the session `session_id` (its detectors and abandon candidate).
    pub fn session(session_id: &str) -> Self {
        Self(key(b'u', &[session_id.as_bytes()]))
    }
}

/// FNV-1a 64 of `tag` then `parts`.
fn key(tag: u8, parts: &[&[u8]]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let step = |hash: u64, byte: &u8| (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
    let hash = parts.iter().fold(step(OFFSET, &tag), |hash, part| {
        part.iter().fold(hash, step)
    });
    hash as i64
}

impl Connection {
    /// Takes, until the open transaction ends, the locks of `keys`: a transaction of another
    /// connection that takes one of them waits until this one commits or rolls back. Taken
    /// in ascending order (whatever the order of `keys`), so transactions that each take
    /// all their keys in one call never wait for each other in a circle. A no-op on SQLite,
    /// which has one writer at a time. Outside a transaction the locks are released at once.
    pub fn lock(&mut self, keys: impl IntoIterator<Item = LockKey>) -> Result<()> {
        let mut keys: Vec<i64> = keys.into_iter().map(|key| key.0).collect();
        self.db.lock_keys(&mut keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_kinds_differ() {
        let span = SpanRef::new([1; 16], [2; 8]).unwrap();
        let keys = [
            LockKey::span(&span),
            LockKey::trace(&span.trace_id),
            LockKey::response_id("abc"),
            LockKey::session("abc"),
            LockKey::session("abd"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Stable: stored nowhere, but receivers of different builds share one server.
        assert_eq!(LockKey::session("abc"), LockKey::session("abc"));
        assert_eq!(key(b'u', &[b"a"]), key(b'u', &[b"", b"a"]));
    }
}
