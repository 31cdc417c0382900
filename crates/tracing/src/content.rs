//! What content the layer and the feedback API may export, and how it is redacted.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use hmac::Mac;
use sha2::{Digest, Sha256};

/// The environment variable the OpenTelemetry GenAI instrumentations use to turn on message
/// content capture. When it is `true` (any case), query, prompt, output and query-embedding
/// capture default to on.
pub const CAPTURE_MESSAGE_CONTENT_ENV: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// A kind of user or model content that is only exported when capture of that kind is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentKind {
    /// The user's query (`closedloop.query.text`).
    Query,
    /// Prompt content: template text, variable values and input messages.
    Prompt,
    /// The model's output (`gen_ai.output.messages`).
    Output,
    /// Free-text feedback comments (`closedloop.feedback.comment`, `gen_ai.evaluation.explanation`).
    Comment,
    /// The query's semantic fingerprint (`closedloop.query.semantic_fingerprint`): a hash of its
    /// embedding, never the vector, which still tells roughly what the query is about.
    QueryEmbedding,
}

impl ContentKind {
    const fn bit(self) -> u8 {
        match self {
            ContentKind::Query => 1,
            ContentKind::Prompt => 2,
            ContentKind::Output => 4,
            ContentKind::Comment => 8,
            ContentKind::QueryEmbedding => 16,
        }
    }
}

type Redactor = dyn Fn(ContentKind, &str) -> Cow<'_, str> + Send + Sync;

/// The content policy shared by [`ClosedloopLayer`](crate::ClosedloopLayer), the span helpers and
/// [`FeedbackRecorder`](crate::FeedbackRecorder): which content kinds are captured, the redaction
/// hook, and whether user IDs are hashed.
///
/// Everything is off by default. Cloning is cheap.
#[derive(Clone)]
pub struct ContentPolicy {
    inner: Arc<PolicyInner>,
}

struct PolicyInner {
    capture: u8,
    redactor: Option<Box<Redactor>>,
    user_id_key: Option<Vec<u8>>,
}

impl fmt::Debug for ContentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentPolicy")
            .field("query", &self.captures(ContentKind::Query))
            .field("prompt", &self.captures(ContentKind::Prompt))
            .field("output", &self.captures(ContentKind::Output))
            .field("comment", &self.captures(ContentKind::Comment))
            .field(
                "query_embedding",
                &self.captures(ContentKind::QueryEmbedding),
            )
            .field("redactor", &self.inner.redactor.is_some())
            .field("hashes_user_ids", &self.inner.user_id_key.is_some())
            .finish()
    }
}

impl Default for ContentPolicy {
    fn default() -> Self {
        PolicyBuilder::default().build()
    }
}

impl ContentPolicy {
    /// Whether content of this kind may be exported.
    pub fn captures(&self, kind: ContentKind) -> bool {
        self.inner.capture & kind.bit() != 0
    }

    /// The content to export for `kind`: `None` when capture is off, otherwise the text after
    /// the redaction hook.
    pub fn capture<'a>(&self, kind: ContentKind, text: &'a str) -> Option<Cow<'a, str>> {
        if !self.captures(kind) {
            return None;
        }
        Some(match &self.inner.redactor {
            Some(redact) => Cow::Owned(redact(kind, text).into_owned()),
            None => Cow::Borrowed(text),
        })
    }

    /// The user ID to export: `sha256:` and 64 hex digits (keyed with the configured salt) when
    /// hashing is on, the ID unchanged otherwise.
    pub fn user_id(&self, raw: &str) -> String {
        match &self.inner.user_id_key {
            Some(key) => hash_user_id(key, raw),
            None => raw.to_owned(),
        }
    }

    pub(crate) fn hashes_user_ids(&self) -> bool {
        self.inner.user_id_key.is_some()
    }
}

fn hash_user_id(key: &[u8], raw: &str) -> String {
    let digest: [u8; 32] = if key.is_empty() {
        Sha256::digest(raw.as_bytes()).into()
    } else {
        // Keyed, so a list of known user IDs cannot be hashed and matched by whoever reads traces.
        let mut mac = crate::token::mac(key);
        mac.update(raw.as_bytes());
        mac.finalize().into_bytes().into()
    };
    format!("sha256:{}", hex::encode(digest))
}

/// Builds a [`ContentPolicy`]; see the `with_*` methods of
/// [`ClosedloopLayerBuilder`](crate::ClosedloopLayerBuilder), which forward here.
#[derive(Default)]
pub(crate) struct PolicyBuilder {
    /// Explicit settings: (kind bit, on).
    explicit: Vec<(u8, bool)>,
    redactor: Option<Box<Redactor>>,
    user_id_key: Option<Vec<u8>>,
    env: Option<bool>,
}

impl fmt::Debug for PolicyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBuilder")
            .field("explicit", &self.explicit)
            .field("redactor", &self.redactor.is_some())
            .field("hashes_user_ids", &self.user_id_key.is_some())
            .field("env", &self.env)
            .finish()
    }
}

impl PolicyBuilder {
    /// Reads [`CAPTURE_MESSAGE_CONTENT_ENV`] once.
    pub(crate) fn from_env() -> Self {
        let env = std::env::var(CAPTURE_MESSAGE_CONTENT_ENV)
            .ok()
            .map(|v| v.trim().eq_ignore_ascii_case("true"));
        PolicyBuilder {
            env,
            ..PolicyBuilder::default()
        }
    }

    pub(crate) fn capture(&mut self, kind: ContentKind, on: bool) {
        self.explicit.push((kind.bit(), on));
    }

    pub(crate) fn redactor(&mut self, redactor: Box<Redactor>) {
        self.redactor = Some(redactor);
    }

    pub(crate) fn hash_user_ids(&mut self, key: Option<Vec<u8>>) {
        self.user_id_key = key;
    }

    pub(crate) fn build(self) -> ContentPolicy {
        let mut capture = 0;
        if self.env == Some(true) {
            capture |= ContentKind::Query.bit()
                | ContentKind::Prompt.bit()
                | ContentKind::Output.bit()
                | ContentKind::QueryEmbedding.bit();
        }
        for (bit, on) in self.explicit {
            if on {
                capture |= bit;
            } else {
                capture &= !bit;
            }
        }
        ContentPolicy {
            inner: Arc::new(PolicyInner {
                capture,
                redactor: self.redactor,
                user_id_key: self.user_id_key,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_off_by_default() {
        let policy = ContentPolicy::default();
        for kind in [
            ContentKind::Query,
            ContentKind::Prompt,
            ContentKind::Output,
            ContentKind::Comment,
            ContentKind::QueryEmbedding,
        ] {
            assert!(!policy.captures(kind));
            assert_eq!(policy.capture(kind, "secret"), None);
        }
        assert_eq!(policy.user_id("alice"), "alice");
    }

    #[test]
    fn env_turns_on_message_content_but_not_comments_and_explicit_settings_win() {
        let mut builder = PolicyBuilder {
            env: Some(true),
            ..PolicyBuilder::default()
        };
        builder.capture(ContentKind::Output, false);
        let policy = builder.build();
        assert!(policy.captures(ContentKind::Query));
        assert!(policy.captures(ContentKind::Prompt));
        assert!(!policy.captures(ContentKind::Output));
        assert!(!policy.captures(ContentKind::Comment));
    }

    #[test]
    fn redactor_sees_the_kind_and_rewrites_the_text() {
        let mut builder = PolicyBuilder::default();
        builder.capture(ContentKind::Comment, true);
        builder.redactor(Box::new(|kind, text| {
            assert_eq!(kind, ContentKind::Comment);
            Cow::Owned(text.replace("555-0100", "[phone]"))
        }));
        let policy = builder.build();
        assert_eq!(
            policy
                .capture(ContentKind::Comment, "call me at 555-0100")
                .as_deref(),
            Some("call me at [phone]")
        );
    }

    #[test]
    fn hashed_user_ids_are_stable_keyed_and_prefixed() {
        let mut builder = PolicyBuilder::default();
        builder.hash_user_ids(Some(b"salt".to_vec()));
        let policy = builder.build();
        let hashed = policy.user_id("alice");
        assert!(hashed.starts_with("sha256:"));
        assert_eq!(hashed.len(), "sha256:".len() + 64);
        assert_eq!(hashed, policy.user_id("alice"));
        assert_ne!(hashed, policy.user_id("bob"));
        let mut unsalted = PolicyBuilder::default();
        unsalted.hash_user_ids(Some(Vec::new()));
        assert_eq!(
            unsalted.build().user_id("alice"),
            format!("sha256:{}", hex::encode(Sha256::digest(b"alice")))
        );
    }
}
