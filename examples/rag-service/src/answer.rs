//! Answerers: an OpenAI-compatible chat completions client, or an extractive fallback that
//! quotes the best-matching sentences of the context chunks.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::bm25::Bm25Index;
use crate::text::{sentences, tokenize};

/// `gen_ai.provider.name` of the extractive answerer: no model provider is involved.
pub const EXTRACTIVE_PROVIDER: &str = "closedloop.extractive";
/// `gen_ai.request.model` of the extractive answerer.
pub const EXTRACTIVE_MODEL: &str = "extractive-v1";
/// The `answerer` label of the extractive answerer in `/ask` responses.
pub const EXTRACTIVE_LABEL: &str = "extractive (no LLM configured)";
/// What the extractive answerer says when the context does not answer the question.
pub const NOT_FOUND: &str = "I couldn't find this in the help center.";

/// Settings of an OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// The API base URL, for example `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`;
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The model name (`gen_ai.request.model`).
    pub model: String,
    /// `gen_ai.provider.name`: `openai` for api.openai.com, otherwise whatever the deployment is.
    pub provider: String,
}

impl OpenAiConfig {
    /// Reads `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `OPENAI_MODEL`; `None` unless all three
    /// are set and non-empty. `GEN_AI_PROVIDER_NAME` overrides the provider name, which is
    /// otherwise `openai` for api.openai.com and `openai_compatible` for anything else.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let base_url = var("OPENAI_BASE_URL")?;
        let api_key = var("OPENAI_API_KEY")?;
        let model = var("OPENAI_MODEL")?;
        let provider = var("GEN_AI_PROVIDER_NAME").unwrap_or_else(|| {
            if base_url.contains("api.openai.com") {
                "openai".to_owned()
            } else {
                "openai_compatible".to_owned()
            }
        });
        Some(OpenAiConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model,
            provider,
        })
    }
}

/// What a model call returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Completion {
    pub(crate) text: String,
    pub(crate) response_id: Option<String>,
    pub(crate) response_model: Option<String>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) usage: Option<(i64, i64)>,
}

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The endpoint could not be reached or timed out.
    #[error("model request failed")]
    Request(#[source] reqwest::Error),
    /// The endpoint answered with a non-success status.
    #[error("model endpoint answered HTTP {0}")]
    Status(u16),
    /// The body was not a chat completion with a message.
    #[error("model response is not a chat completion")]
    Malformed,
}

impl AnswerError {
    /// A low-cardinality `error.type` value.
    pub(crate) fn error_type(&self) -> String {
        match self {
            AnswerError::Request(e) if e.is_timeout() => "timeout".to_owned(),
            AnswerError::Request(_) => "request_failed".to_owned(),
            AnswerError::Status(code) => code.to_string(),
            AnswerError::Malformed => "malformed_response".to_owned(),
        }
    }
}

/// Produces answers: from a model when one is configured, extractive otherwise.
#[derive(Debug, Clone)]
pub(crate) enum Answerer {
    Extractive,
    OpenAi {
        config: OpenAiConfig,
        client: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct ChatResponse {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<ChatChoice>,
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
}

impl Answerer {
    pub(crate) fn new(openai: Option<OpenAiConfig>, timeout: Duration) -> Self {
        match openai {
            None => Answerer::Extractive,
            Some(config) => {
                // Falls back to a default client if the builder fails (it only fails on TLS
                // backend initialisation); the timeout is then the OS default.
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .unwrap_or_default();
                Answerer::OpenAi { config, client }
            }
        }
    }

    pub(crate) fn provider(&self) -> &str {
        match self {
            Answerer::Extractive => EXTRACTIVE_PROVIDER,
            Answerer::OpenAi { config, .. } => &config.provider,
        }
    }

    pub(crate) fn model(&self) -> &str {
        match self {
            Answerer::Extractive => EXTRACTIVE_MODEL,
            Answerer::OpenAi { config, .. } => &config.model,
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Answerer::Extractive => EXTRACTIVE_LABEL.to_owned(),
            Answerer::OpenAi { config, .. } => format!("{} ({})", config.model, config.provider),
        }
    }

    /// Calls the model with `prompt`.
    pub(crate) async fn complete(&self, prompt: &str) -> Result<Completion, AnswerError> {
        let Answerer::OpenAi { config, client } = self else {
            return Err(AnswerError::Malformed);
        };
        let body = serde_json::json!({
            "model": config.model,
            "messages": [{ "role": "user", "content": prompt }],
            "temperature": TEMPERATURE,
            "max_tokens": MAX_TOKENS,
        });
        let response = client
            .post(format!("{}/chat/completions", config.base_url))
            .bearer_auth(&config.api_key)
            .json(&body)
            .send()
            .await
            .map_err(AnswerError::Request)?;
        if !response.status().is_success() {
            return Err(AnswerError::Status(response.status().as_u16()));
        }
        let chat: ChatResponse = response.json().await.map_err(|_| AnswerError::Malformed)?;
        let choice = chat
            .choices
            .into_iter()
            .next()
            .ok_or(AnswerError::Malformed)?;
        Ok(Completion {
            text: choice.message.content.ok_or(AnswerError::Malformed)?,
            response_id: chat.id,
            response_model: chat.model,
            finish_reason: choice.finish_reason,
            usage: chat.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
        })
    }
}

/// `gen_ai.request.temperature` of model calls.
pub(crate) const TEMPERATURE: f64 = 0.0;
/// `gen_ai.request.max_tokens` of model calls.
pub(crate) const MAX_TOKENS: i64 = 400;

/// Share of the query's IDF weight added to the score of the first sentence of the first
/// context chunk.
const LEAD_SENTENCE_BONUS: f64 = 0.25;

/// How the extractive answerer behaves; set by the prompt template version, so the two
/// versions differ observably even without a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExtractiveStyle {
    /// Most sentences quoted.
    pub(crate) max_sentences: usize,
    /// Share of the query's IDF weight the best sentence must cover, or the answer is
    /// [`NOT_FOUND`] ("answer only from context").
    pub(crate) min_coverage: f64,
    /// Whether the chunk IDs used are cited after the answer.
    pub(crate) cite: bool,
}

/// The extractive answer: the best-matching sentences of the context chunks (given as
/// `(chunk id, text)` in prompt order), in the order they appear there.
pub(crate) fn extractive(
    index: &Bm25Index,
    query: &str,
    context: &[(&str, &str)],
    style: ExtractiveStyle,
) -> String {
    let mut terms = tokenize(query);
    terms.sort_unstable();
    terms.dedup();
    let total: f64 = terms.iter().map(|t| index.idf(t)).sum();
    // (score, query coverage, chunk position, sentence position, chunk id, sentence)
    let mut scored: Vec<(f64, f64, usize, usize, &str, &str)> = Vec::new();
    for (ci, (id, text)) in context.iter().enumerate() {
        for (si, sentence) in sentences(text).into_iter().enumerate() {
            let present: HashSet<String> = tokenize(sentence).into_iter().collect();
            let covered: f64 = terms
                .iter()
                .filter(|t| present.contains(*t))
                .map(|t| index.idf(t))
                .sum();
            if covered > 0.0 {
                // The lead sentence of the best chunk usually states the answer itself.
                let lead = if ci == 0 && si == 0 {
                    LEAD_SENTENCE_BONUS * total
                } else {
                    0.0
                };
                scored.push((covered + lead, covered, ci, si, id, sentence));
            }
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.2, a.3).cmp(&(b.2, b.3))));
    let best = scored.iter().map(|s| s.1).fold(0.0, f64::max);
    if scored.is_empty() || total <= 0.0 || best / total < style.min_coverage {
        return NOT_FOUND.to_owned();
    }
    scored.truncate(style.max_sentences);
    scored.sort_by_key(|s| (s.2, s.3));
    let mut answer = scored.iter().map(|s| s.5).collect::<Vec<_>>().join(" ");
    if style.cite {
        let mut cited: Vec<&str> = Vec::new();
        for s in &scored {
            if !cited.contains(&s.4) {
                cited.push(s.4);
            }
        }
        answer.push_str(&format!(" [{}]", cited.join(", ")));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Corpus;

    const LOOSE: ExtractiveStyle = ExtractiveStyle {
        max_sentences: 2,
        min_coverage: 0.0,
        cite: false,
    };

    #[test]
    fn extractive_quotes_the_matching_sentences_in_order() {
        let index = Bm25Index::new(Corpus::bundled());
        let chunk = index.corpus().chunk("account-locked#0").unwrap();
        let answer = extractive(
            &index,
            "how long is my account locked after failed attempts",
            &[(&chunk.id, &chunk.text)],
            LOOSE,
        );
        assert!(
            answer.starts_with("After 10 failed sign-in attempts"),
            "{answer}"
        );
    }

    #[test]
    fn strict_style_refuses_weak_matches_and_cites_chunks() {
        let index = Bm25Index::new(Corpus::bundled());
        let chunk = index.corpus().chunk("refunds#1").unwrap();
        let strict = ExtractiveStyle {
            max_sentences: 2,
            min_coverage: 0.5,
            cite: true,
        };
        let weak = extractive(
            &index,
            "can I pay with bitcoin in the mobile app",
            &[(&chunk.id, &chunk.text)],
            strict,
        );
        assert_eq!(weak, NOT_FOUND);
        let good = extractive(
            &index,
            "refund annual plan within 30 days",
            &[(&chunk.id, &chunk.text)],
            strict,
        );
        assert!(good.ends_with("[refunds#1]"), "{good}");
        assert_eq!(extractive(&index, "", &[], LOOSE), NOT_FOUND);
    }
}
