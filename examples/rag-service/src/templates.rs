//! The two prompt template versions and the per-session choice between them.

use closedloop_tracing::PromptTemplate;
use sha2::{Digest, Sha256};

use crate::answer::ExtractiveStyle;

/// The template id both versions share (`closedloop.prompt.template.id`).
pub const TEMPLATE_ID: &str = "help_center_answer";

/// Version 1: friendly, uses the three reranked chunks.
const V1_TEXT: &str = "You are the Tallyhive help-center assistant. Use the help-center \
excerpts below to answer the customer's question in a friendly, concise way.\n\n\
Excerpts:\n{context}\n\nQuestion: {question}\nAnswer:";

/// Version 2: stricter. Answer only from the context, say so when it does not contain the
/// answer, cite excerpt IDs, and only the two best chunks.
const V2_TEXT: &str = "Answer ONLY from the help-center excerpts below. If they do not contain \
the answer, reply exactly \"I couldn't find this in the help center.\" and nothing else. \
Do not guess. Cite the excerpt IDs you used in square brackets.\n\n\
Excerpts:\n{context}\n\nQuestion: {question}";

/// One template version and how the pipeline uses it.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) template: PromptTemplate,
    /// How many reranked chunks go into the prompt.
    pub(crate) context_chunks: usize,
    /// How the extractive answerer follows the template's instructions.
    pub(crate) style: ExtractiveStyle,
}

/// Both versions; [`Templates::for_session`] picks one per session.
#[derive(Debug, Clone)]
pub(crate) struct Templates {
    variants: [Variant; 2],
}

impl Templates {
    pub(crate) fn new() -> Self {
        Templates {
            variants: [
                Variant {
                    template: PromptTemplate::new(TEMPLATE_ID, V1_TEXT).with_version("v1"),
                    context_chunks: 3,
                    style: ExtractiveStyle {
                        max_sentences: 2,
                        min_coverage: 0.0,
                        cite: false,
                    },
                },
                Variant {
                    template: PromptTemplate::new(TEMPLATE_ID, V2_TEXT).with_version("v2"),
                    context_chunks: 2,
                    style: ExtractiveStyle {
                        max_sentences: 2,
                        min_coverage: 0.5,
                        cite: true,
                    },
                },
            ],
        }
    }

    /// The variant for a session: the low bit of SHA-256(session id), so a session always sees
    /// the same version and sessions split about evenly.
    pub(crate) fn for_session(&self, session_id: &str) -> &Variant {
        let digest = Sha256::digest(session_id.as_bytes());
        &self.variants[usize::from(digest[0] & 1)]
    }

    /// The version string of the variant a session gets, without running a request.
    pub(crate) fn version_for_session(&self, session_id: &str) -> &str {
        self.for_session(session_id).template.version()
    }
}

/// The template version (`v1` or `v2`) the service uses for `session_id`.
///
/// Deterministic: the same session always gets the same version, so a simulator or a test can
/// predict which version a session exercises.
pub fn template_version_for_session(session_id: &str) -> String {
    Templates::new().version_for_session(session_id).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_get_traffic_and_the_choice_is_stable() {
        let templates = Templates::new();
        let v2 = (0..200)
            .filter(|i| templates.version_for_session(&format!("session-{i}")) == "v2")
            .count();
        assert!((60..=140).contains(&v2), "{v2} of 200 sessions got v2");
        assert_eq!(
            templates.version_for_session("abc"),
            templates.version_for_session("abc")
        );
    }

    #[test]
    fn versions_share_the_id_and_differ_in_text() {
        let t = Templates::new();
        let [a, b] = &t.variants;
        assert_eq!(a.template.id(), b.template.id());
        assert_ne!(a.template.hash(), b.template.hash());
        assert_eq!(a.template.variables(), ["context", "question"]);
        assert_eq!(b.template.variables(), ["context", "question"]);
        assert!(b.context_chunks < a.context_chunks);
    }
}
