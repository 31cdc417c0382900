//! The Phoenix sink: each failure-record revision as a span annotation
//! (`POST /v1/span_annotations`), upserted by the record's id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Deserialize;

use closedloop_engine::failure_span::EVALUATION_NAME;
use closedloop_engine::secret::Secret;

use super::client::SendError;
use super::json_http;
use super::record::{AnnotationTarget, Evaluation};
use super::ExportConfigError;

/// The variable the Phoenix API key is read from; it ranks above `export.phoenix.api_key`.
pub const PHOENIX_API_KEY_ENV: &str = "CLOSEDLOOP_PHOENIX_API_KEY";

/// The `[export.phoenix]` section: failure records as Phoenix span annotations.
///
/// Each revision of a record upserts one annotation named `closedloop.failure` (Phoenix's
/// `identifier` is the record's `closedloop.failure.id`): label the category, score the
/// severity (low 0.25 to critical 1), explanation a summary of the decision, and as metadata
/// the record id, revision, stage, severity, template version and triage status. No content
/// (queries, answers, comments) is sent. Requests are synchronous (`sync=true`), so a 2xx
/// means Phoenix stored the annotation. Phoenix refuses a whole request (404, "Spans with IDs
/// … do not exist") when one of its spans has not reached it yet: that is retried with the
/// exporter's backoff while every revision in the request is younger than
/// `missing_span_wait_secs`; after that the request is split like a refused one, so the
/// revisions whose span is there are delivered and one whose span never came is given up
/// (logged), instead of holding up the annotations behind it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PhoenixConfig {
    /// Phoenix's base URL, e.g. `http://127.0.0.1:6006`. Required.
    pub endpoint: String,
    /// The API key sent as `Authorization: Bearer`, when Phoenix has authentication on. A
    /// secret: prefer the `CLOSEDLOOP_PHOENIX_API_KEY` variable; `check-config` shows it
    /// redacted. Default none.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The span annotated: `record` (the failure-record span, which must reach the same
    /// Phoenix through `[export]`) or `response` (the judged span, from the application's own
    /// traces). Default `record`.
    #[serde(default)]
    pub target: AnnotationTarget,
    /// The annotator kind Phoenix shows: `HUMAN`, `LLM` or `CODE`. Default `CODE`: closedloop's
    /// failure rules decide the label from the feedback.
    #[serde(default)]
    pub annotator_kind: AnnotatorKind,
    /// The timeout of one request, in milliseconds. Default 10000.
    #[serde(default = "default_timeout_millis")]
    pub timeout_millis: u64,
    /// How long after a revision was written its annotation waits for the annotated span to
    /// reach Phoenix, in seconds. Default 600.
    #[serde(default = "default_missing_span_wait_secs")]
    pub missing_span_wait_secs: u64,
}

/// Phoenix's annotator kinds.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AnnotatorKind {
    /// A person.
    #[serde(rename = "HUMAN")]
    Human,
    /// A model acting as a judge.
    #[serde(rename = "LLM")]
    Llm,
    /// A program.
    #[default]
    #[serde(rename = "CODE")]
    Code,
}

impl AnnotatorKind {
    /// The name Phoenix's API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotatorKind::Human => "HUMAN",
            AnnotatorKind::Llm => "LLM",
            AnnotatorKind::Code => "CODE",
        }
    }
}

const fn default_timeout_millis() -> u64 {
    10_000
}

const fn default_missing_span_wait_secs() -> u64 {
    600
}

/// What Phoenix says in a 404 for spans it does not have.
const MISSING_SPANS: &str = "do not exist";

impl PhoenixConfig {
    /// Lays `CLOSEDLOOP_PHOENIX_API_KEY` over the file's key.
    pub(crate) fn layer(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(key) = env(PHOENIX_API_KEY_ENV).filter(|key| !key.trim().is_empty()) {
            self.api_key = Some(key.trim().into());
        }
    }
}

/// The client of one Phoenix.
#[derive(Debug)]
pub(crate) struct PhoenixClient {
    client: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
    target: AnnotationTarget,
    annotator_kind: AnnotatorKind,
    missing_span_wait: Duration,
    pub(crate) timeout: Duration,
}

impl PhoenixClient {
    pub(crate) fn new(config: &PhoenixConfig) -> Result<PhoenixClient, ExportConfigError> {
        let (client, timeout) = json_http::client(&config.endpoint, config.timeout_millis)?;
        Ok(PhoenixClient {
            client,
            url: json_http::join(&config.endpoint, "/v1/span_annotations?sync=true"),
            api_key: config.api_key.clone(),
            target: config.target,
            annotator_kind: config.annotator_kind,
            missing_span_wait: Duration::from_secs(config.missing_span_wait_secs),
            timeout,
        })
    }

    /// The request body for `spans`: one annotation per failure-record revision.
    pub(crate) fn body(&self, spans: &[Span]) -> serde_json::Value {
        let data: Vec<serde_json::Value> = spans
            .iter()
            .filter_map(Evaluation::from_span)
            .map(|evaluation| {
                serde_json::json!({
                    "span_id": evaluation.target(self.target),
                    "name": EVALUATION_NAME,
                    "annotator_kind": self.annotator_kind.as_str(),
                    "identifier": evaluation.failure_id,
                    "result": {
                        "label": evaluation.category,
                        "score": evaluation.score,
                        "explanation": evaluation.explanation,
                    },
                    "metadata": evaluation.metadata(),
                })
            })
            .collect();
        serde_json::json!({ "data": data })
    }

    pub(crate) async fn send(&self, spans: &[Span]) -> Result<(), SendError> {
        let mut request = self.client.post(self.url.as_str()).json(&self.body(spans));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let mut result = json_http::send(request).await;
        if let Err(error) = &mut result {
            if error.message.starts_with("http status 404")
                && error.message.contains(MISSING_SPANS)
                && spans.iter().any(|span| self.waited_long_enough(span))
            {
                // Split (or, for one revision, give up): see [`PhoenixConfig`].
                error.retryable = false;
            }
        }
        result
    }

    /// Whether the revision `span` was written longer than `missing_span_wait` ago.
    fn waited_long_enough(&self, span: &Span) -> bool {
        let written = UNIX_EPOCH + Duration::from_nanos(span.end_time_unix_nano);
        SystemTime::now()
            .duration_since(written)
            .is_ok_and(|waited| waited >= self.missing_span_wait)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use opentelemetry_proto::tonic::trace::v1::Span;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::{PhoenixClient, PhoenixConfig};

    /// A server answering every request with a 404 and `body`.
    async fn answering_404(body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    // Read the request's head and body (small), then answer and close.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request);
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let length = text[..head_end]
                                .lines()
                                .find_map(|line| {
                                    let (name, value) = line.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if request.len() >= head_end + 4 + length {
                                break;
                            }
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        format!("http://{address}")
    }

    fn client(endpoint: String) -> PhoenixClient {
        PhoenixClient::new(&PhoenixConfig {
            endpoint,
            api_key: None,
            target: Default::default(),
            annotator_kind: Default::default(),
            timeout_millis: 5_000,
            missing_span_wait_secs: 600,
        })
        .unwrap()
    }

    /// A revision span written `age` ago.
    fn written(age: Duration) -> Span {
        let at = SystemTime::now() - age;
        Span {
            end_time_unix_nano: at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_missing_span_is_waited_for_then_given_up() {
        let phoenix = client(
            answering_404(r#"{"detail":"Spans with IDs 00f067aa0ba902b7 do not exist."}"#).await,
        );
        let young = phoenix
            .send(&[written(Duration::from_secs(5))])
            .await
            .unwrap_err();
        assert!(young.retryable, "the span may still reach Phoenix");
        let old = phoenix
            .send(&[
                written(Duration::from_secs(5)),
                written(Duration::from_secs(3_600)),
            ])
            .await
            .unwrap_err();
        assert!(
            !old.retryable,
            "split, so the other annotations are delivered"
        );
    }

    #[tokio::test]
    async fn a_404_that_is_not_about_spans_is_retried() {
        // A wrong path or a proxy: not about the data, so nothing is given up.
        let phoenix = client(answering_404(r#"{"detail":"Not Found"}"#).await);
        let error = phoenix
            .send(&[written(Duration::from_secs(3_600))])
            .await
            .unwrap_err();
        assert!(error.retryable);
    }
}
