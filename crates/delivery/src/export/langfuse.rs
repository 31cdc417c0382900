//! The Langfuse sink: each failure-record revision as scores (`POST /api/public/scores`),
//! upserted by the record's id.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Deserialize;

use closedloop_engine::failure_span::EVALUATION_NAME;
use closedloop_engine::secret::Secret;

use super::client::SendError;
use super::json_http;
use super::record::{AnnotationTarget, Evaluation};
use super::ExportConfigError;

/// The variable the Langfuse public key is read from; it ranks above the file.
pub const LANGFUSE_PUBLIC_KEY_ENV: &str = "CLOSEDLOOP_LANGFUSE_PUBLIC_KEY";
/// The variable the Langfuse secret key is read from; it ranks above the file.
pub const LANGFUSE_SECRET_KEY_ENV: &str = "CLOSEDLOOP_LANGFUSE_SECRET_KEY";

/// The name of the categorical score that carries a record's category.
pub(crate) const CATEGORY_SCORE_NAME: &str = "closedloop.failure.category";

/// The `[export.langfuse]` section: failure records as Langfuse scores.
///
/// Each revision of a record upserts two scores on the trace (and the observation
/// `target` names): `closedloop.failure`, NUMERIC, the severity from 0.25 (low) to 1
/// (critical), with the decision's summary as comment; and `closedloop.failure.category`,
/// CATEGORICAL, the category. Their ids are derived from the record's
/// `closedloop.failure.id`, so later revisions update them. Metadata: the record id, revision,
/// stage, severity, template version and triage status. No content is sent.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LangfuseConfig {
    /// Langfuse's base URL, e.g. `http://127.0.0.1:3000`. Required.
    pub endpoint: String,
    /// The project's public key (the basic-auth user). Prefer
    /// `CLOSEDLOOP_LANGFUSE_PUBLIC_KEY`. Required, from either.
    #[serde(default)]
    pub public_key: Option<Secret>,
    /// The project's secret key (the basic-auth password). A secret: prefer
    /// `CLOSEDLOOP_LANGFUSE_SECRET_KEY`; `check-config` shows it redacted. Required, from either.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// The observation scored: `response` (the judged span, as Langfuse shows user feedback)
    /// or `record` (the failure-record span, when `[export]` sends records to Langfuse too).
    /// Default `response`.
    #[serde(default = "default_target")]
    pub target: AnnotationTarget,
    /// The timeout of one request, in milliseconds. Default 10000.
    #[serde(default = "default_timeout_millis")]
    pub timeout_millis: u64,
}

const fn default_target() -> AnnotationTarget {
    AnnotationTarget::Response
}

const fn default_timeout_millis() -> u64 {
    10_000
}

impl LangfuseConfig {
    /// Lays the key variables over the file's keys.
    pub(crate) fn layer(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let read = |name| env(name).filter(|key: &String| !key.trim().is_empty());
        if let Some(key) = read(LANGFUSE_PUBLIC_KEY_ENV) {
            self.public_key = Some(key.trim().into());
        }
        if let Some(key) = read(LANGFUSE_SECRET_KEY_ENV) {
            self.secret_key = Some(key.trim().into());
        }
    }
}

/// The client of one Langfuse project.
#[derive(Debug)]
pub(crate) struct LangfuseClient {
    client: reqwest::Client,
    url: String,
    public_key: Secret,
    secret_key: Secret,
    target: AnnotationTarget,
    pub(crate) timeout: Duration,
}

impl LangfuseClient {
    pub(crate) fn new(config: &LangfuseConfig) -> Result<LangfuseClient, ExportConfigError> {
        let (client, timeout) = json_http::client(&config.endpoint, config.timeout_millis)?;
        let (Some(public_key), Some(secret_key)) = (&config.public_key, &config.secret_key) else {
            return Err(ExportConfigError::MissingKey("export.langfuse"));
        };
        Ok(LangfuseClient {
            client,
            url: json_http::join(&config.endpoint, "/api/public/scores"),
            public_key: public_key.clone(),
            secret_key: secret_key.clone(),
            target: config.target,
            timeout,
        })
    }

    /// The score bodies of one failure-record revision.
    pub(crate) fn scores(&self, evaluation: &Evaluation) -> [serde_json::Value; 2] {
        let observation = evaluation.target(self.target);
        let metadata = evaluation.metadata();
        [
            serde_json::json!({
                "id": evaluation.failure_id,
                "traceId": evaluation.trace_id,
                "observationId": observation,
                "name": EVALUATION_NAME,
                "value": evaluation.score,
                "dataType": "NUMERIC",
                "comment": evaluation.explanation,
                "metadata": metadata,
            }),
            serde_json::json!({
                "id": format!("{}_category", evaluation.failure_id),
                "traceId": evaluation.trace_id,
                "observationId": observation,
                "name": CATEGORY_SCORE_NAME,
                "value": evaluation.category,
                "dataType": "CATEGORICAL",
                "metadata": metadata,
            }),
        ]
    }

    /// Sends the scores of `spans` one request at a time. A failure stops the batch; the
    /// whole batch is sent again later, and the scores already stored are updated in place
    /// (same ids), not duplicated.
    pub(crate) async fn send(&self, spans: &[Span]) -> Result<(), SendError> {
        for evaluation in spans.iter().filter_map(Evaluation::from_span) {
            for score in self.scores(&evaluation) {
                let request = self
                    .client
                    .post(self.url.as_str())
                    .basic_auth(self.public_key.expose(), Some(self.secret_key.expose()))
                    .json(&score);
                json_http::send(request).await?;
            }
        }
        Ok(())
    }
}
