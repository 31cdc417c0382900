//! The sinks the exporter delivers to, each from its own outbox rows: OTLP, Phoenix span
//! annotations, Langfuse scores. The outbox, batching, retries, backoff and leases
//! (`export/mod.rs`) are the same for all; a sink only turns a batch of failure-record spans
//! into its requests and says how each ended.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;

use super::client::{Accepted, Client, SendError};
use super::langfuse::LangfuseClient;
use super::phoenix::PhoenixClient;
use super::resource::Envelope;
use super::{ExportConfig, ExportConfigError, LANGFUSE_SINK, OTLP_SINK, PHOENIX_SINK};

/// The most revisions in one Langfuse batch (32 requests).
const LANGFUSE_MAX_BATCH: usize = 16;

/// One sink's client.
#[derive(Debug)]
pub(crate) enum Sink {
    /// OTLP spans (`[export]` endpoint), in the resource of `[export] resource`.
    Otlp {
        client: Client,
        envelope: Envelope,
        timeout: Duration,
    },
    /// Phoenix span annotations (`[export.phoenix]`).
    Phoenix(PhoenixClient),
    /// Langfuse scores (`[export.langfuse]`).
    Langfuse(LangfuseClient),
}

impl Sink {
    /// Every sink `config` turns on.
    pub(crate) fn all(config: &ExportConfig) -> Result<Vec<Sink>, ExportConfigError> {
        let mut sinks = Vec::new();
        if let Some(target) = config.resolve()? {
            sinks.push(Sink::Otlp {
                client: Client::new(&target)?,
                envelope: Envelope::new(&config.resource),
                timeout: target.timeout,
            });
        }
        if let Some(phoenix) = &config.phoenix {
            sinks.push(Sink::Phoenix(PhoenixClient::new(phoenix)?));
        }
        if let Some(langfuse) = &config.langfuse {
            sinks.push(Sink::Langfuse(LangfuseClient::new(langfuse)?));
        }
        Ok(sinks)
    }

    /// The name its outbox rows carry.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Sink::Otlp { .. } => OTLP_SINK,
            Sink::Phoenix(_) => PHOENIX_SINK,
            Sink::Langfuse(_) => LANGFUSE_SINK,
        }
    }

    /// The timeout of one request.
    pub(crate) fn timeout(&self) -> Duration {
        match self {
            Sink::Otlp { timeout, .. } => *timeout,
            Sink::Phoenix(client) => client.timeout,
            Sink::Langfuse(client) => client.timeout,
        }
    }

    /// The most revisions one batch of this sink carries, at most `configured`. Langfuse
    /// takes one score per request, two per revision, sent one after the other: its batches
    /// are kept small enough to be sent well within the lease of the rows they hold.
    pub(crate) fn max_batch(&self, configured: usize) -> usize {
        match self {
            Sink::Langfuse(_) => configured.min(LANGFUSE_MAX_BATCH),
            Sink::Otlp { .. } | Sink::Phoenix(_) => configured,
        }
        .max(1)
    }

    /// Delivers one batch; `Ok` once the sink has it all.
    pub(crate) async fn send(&mut self, spans: Vec<Span>) -> Result<Accepted, SendError> {
        match self {
            Sink::Otlp {
                client, envelope, ..
            } => client.send(envelope.request(spans)).await,
            Sink::Phoenix(client) => client.send(&spans).await.map(|()| Accepted::default()),
            Sink::Langfuse(client) => client.send(&spans).await.map(|()| Accepted::default()),
        }
    }
}
