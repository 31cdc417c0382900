//! The failure-record exporter: an outbox table drained to an OTLP backend and to the
//! annotation sinks.
//!
//! Each revision of a failure record is encoded as a span (see [`span`]) and written to the
//! `outbox` table in the same transaction as the record, once per sink, so a record and its
//! export cannot diverge. The sinks are OTLP (`[export]` endpoint), Phoenix span annotations
//! (`[export.phoenix]`, see [`PhoenixConfig`]) and Langfuse scores (`[export.langfuse]`, see
//! [`LangfuseConfig`]), each optional; each sink has an exporter task of its own, with its
//! own rows, so a sink that is down delays no other. Everything below holds for each sink.
//! The exporter task reads the oldest rows, sends them in one request (OTLP: gRPC
//! with tonic, or HTTP/protobuf with reqwest, gzip by default; Phoenix: one JSON request;
//! Langfuse: one JSON request per score) and deletes them only after a
//! 2xx / gRPC OK. Annotations and scores are keyed by the record's id, so a record's later
//! revisions, and a batch sent twice, update them rather than add new ones. A backend that is down loses nothing: rows stay in the outbox, and the
//! exporter retries with exponential backoff (full jitter, capped by
//! `export.max_backoff_secs`), honouring HTTP `Retry-After` and gRPC `RetryInfo`; a restart
//! resumes from the outbox.
//!
//! Batch size. Requests carry up to `export.max_batch_spans` spans. A request that runs out
//! of time (`export.timeout_millis`) is a failure to back off from like any other, and it
//! also halves the batch size (down to one span), so a backend too slow for a full batch
//! still drains the outbox in smaller requests. The size doubles again, up to the maximum,
//! after each request answered within a quarter of the timeout, so it settles where requests
//! finish in time.
//!
//! Bad data. A batch the backend rejects as malformed (HTTP 400/413/415/422, gRPC
//! INVALID_ARGUMENT, RESOURCE_EXHAUSTED without RetryInfo) is split in halves, each sent on
//! its own, and a rejected half is split again, so the bad spans are isolated in about
//! 2·log₂(batch) requests while the good ones are delivered; a single span still rejected
//! is dropped with an error log, since retrying it cannot succeed. Once that batch is done,
//! the exporter goes back to full batches.
//!
//! Duplicates. Delivery is at least once. A span is sent again only after an attempt whose
//! outcome the exporter cannot know: a request that timed out or lost its connection after
//! sending (the backend may have kept it), or a crash between the backend's OK and the
//! commit of the deletion. Each such attempt can duplicate at most the spans it carried, so:
//! a crash duplicates at most one batch (`export.max_batch_spans`); a run of consecutive
//! timeouts starting at batch size `b` re-sends at most `b + b/2 + b/4 + … < 2·b` spans, and
//! each later timeout at most the (halved) batch it carried. The spans of a batch answered
//! with an error (HTTP status, gRPC status) are not duplicated: the backend refused them. A
//! revision's span id is derived from the record and revision, so a duplicate is the same
//! span, which backends can recognise.
//!
//! The writer wakes the exporter through a `Notify` when it adds rows; there is no polling.
//! With no endpoint configured, records are stored and the outbox is not filled.

mod client;
mod config;
mod json_http;
mod langfuse;
mod phoenix;
mod record;
mod resource;
mod sink;
pub use closedloop_engine::failure_span as span;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

pub use config::{ExportCompression, ExportConfig, ExportConfigError, ExportProtocol};
pub use config::{ExportFlags, Resolved};
pub use langfuse::{LangfuseConfig, LANGFUSE_PUBLIC_KEY_ENV, LANGFUSE_SECRET_KEY_ENV};
pub use phoenix::{AnnotatorKind, PhoenixConfig, PHOENIX_API_KEY_ENV};
pub use record::AnnotationTarget;

use crate::backoff::Backoff;
use closedloop_engine::counters::Shared;
use closedloop_engine::store::{Store, StoreConfig};
use closedloop_store::records::OutboxRow;
use closedloop_store::{Access, Connection};
use sink::Sink;

/// The default `service.name` of the exported failure-record spans (`[export] resource`).
pub const SERVICE_NAME: &str = "closedloop";
/// The instrumentation scope of the exported failure-record spans.
pub const SCOPE_NAME: &str = "closedloop-receiver";

/// The outbox name of the OTLP sink.
pub const OTLP_SINK: &str = "otlp";
/// The outbox name of the Phoenix span-annotation sink.
pub const PHOENIX_SINK: &str = "phoenix";
/// The outbox name of the Langfuse score sink.
pub const LANGFUSE_SINK: &str = "langfuse";

/// How often an idle exporter looks for outbox rows written by other connections.
const OUTBOX_POLL: Duration = Duration::from_secs(2);

/// What makes the exporter stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    Run,
    /// Make one last pass over the outbox, then stop.
    Drain,
}

/// The exporter task of one sink.
pub struct Exporter {
    sink: Sink,
    reader: Option<Connection>,
    store_config: StoreConfig,
    store: Arc<Store>,
    shared: Arc<Shared>,
    max_batch: usize,
    backoff: Backoff,
    stop: watch::Receiver<Stop>,
    /// The request timeout (`export.timeout_millis`).
    timeout: Duration,
    /// The spans read per request now: `max_batch`, or less after a timeout.
    batch: usize,
    /// The parts of a batch the backend rejected as malformed, still to send on their own
    /// (the next one last), before new rows are read.
    parts: Vec<Vec<OutboxRow>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("sink", &self.sink)
            .field("store", &self.store_config.path)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// The outcome of one pass.
enum Pass {
    /// The outbox is empty.
    Idle,
    /// Rows were delivered (or dropped); look again at once.
    Progress,
    /// The backend failed; wait this long.
    Backoff(Duration),
}

impl Drop for Exporter {
    /// Closes the reader connection off the async runtime the exporter ends on.
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.close_in_background();
        }
    }
}

impl Exporter {
    /// One exporter per sink `config` turns on, each draining its rows of the outbox of the
    /// store `store_config` names (deliveries handed to the writer `store`) until `stop`
    /// says so. Empty when no sink is on.
    pub fn all(
        config: &ExportConfig,
        store_config: StoreConfig,
        store: Arc<Store>,
        shared: Arc<Shared>,
        stop: watch::Receiver<Stop>,
    ) -> Result<Vec<Exporter>, ExportConfigError> {
        Ok(Sink::all(config)?
            .into_iter()
            .map(|sink| Exporter {
                timeout: sink.timeout(),
                max_batch: sink.max_batch(config.max_batch_spans),
                batch: sink.max_batch(config.max_batch_spans),
                sink,
                reader: None,
                store_config: store_config.clone(),
                store: Arc::clone(&store),
                shared: Arc::clone(&shared),
                backoff: Backoff::new(config.initial_backoff_millis, config.max_backoff_secs),
                stop: stop.clone(),
                parts: Vec::new(),
            })
            .collect())
    }

    /// Runs every exporter of `exporters` until each has stopped; aborting the returned
    /// future's task aborts them all.
    pub async fn run_all(exporters: Vec<Exporter>) {
        let mut tasks = tokio::task::JoinSet::new();
        for exporter in exporters {
            tasks.spawn(exporter.run());
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Runs until told to drain, then makes one last pass.
    pub async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            if *self.stop.borrow() == Stop::Drain {
                break;
            }
            match self.pass().await {
                Pass::Progress => failures = 0,
                Pass::Idle => {
                    failures = 0;
                    let wake = Arc::clone(&self.shared);
                    // Other connections (the CLI's triage and review commands) add outbox rows
                    // without waking this task, so an idle exporter also looks now and then.
                    tokio::select! {
                        () = wake.export_wake.notified() => {}
                        () = tokio::time::sleep(OUTBOX_POLL) => {}
                        _ = self.stop.changed() => {}
                    }
                }
                Pass::Backoff(server_hint) => {
                    failures = failures.saturating_add(1);
                    let delay = self
                        .backoff
                        .delay(failures)
                        .max(server_hint.min(self.backoff.max()));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = self.stop.changed() => {}
                    }
                }
            }
        }
        // Shutdown: deliver what the backend takes now; the rest stays for the next start.
        while let Pass::Progress = self.pass().await {}
        debug!("Exporter stopped.");
    }

    /// Claims the oldest rows to send (on a shared store, leased to this receiver for
    /// [`lease`](Self::lease): no other receiver sends them meanwhile).
    async fn read(&mut self, limit: usize) -> Result<Vec<OutboxRow>, String> {
        let lease_secs = self.lease().as_secs() as i64;
        let sink = self.sink.name();
        self.with_reader(move |reader| {
            let now_s = closedloop_engine::store::writer::unix_now_s();
            reader.claim_outbox(sink, now_s, now_s.saturating_add(lease_secs), limit)
        })
        .await
    }

    /// How long claimed rows stay this receiver's on a shared store: long enough for the
    /// retries of a slow backend, short enough that the rows of a receiver that stopped
    /// are sent by another soon. Four request timeouts, and at least a minute.
    fn lease(&self) -> Duration {
        self.timeout.saturating_mul(4).max(Duration::from_secs(60))
    }

    /// Gives back the lease of rows that were not delivered and are not kept to retry, so
    /// the next claim takes them at once.
    async fn release(&mut self, ids: Vec<i64>) {
        if let Err(error) = self
            .with_reader(move |reader| reader.release_outbox(&ids))
            .await
        {
            warn!(%error, "Cannot release the lease of undelivered failure records; they wait for it to expire.");
        }
    }

    async fn with_reader<T: Send + 'static>(
        &mut self,
        run: impl FnOnce(&mut Connection) -> Result<T, closedloop_store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let reader = self.reader.take();
        let store_config = self.store_config.clone();
        // The connection moves to the blocking thread and back, so it is never shared.
        let joined = tokio::task::spawn_blocking(move || {
            let reader = match reader {
                Some(reader) => reader,
                // On a shared store claiming rows writes their lease: not a read-only session.
                None => match Connection::open(
                    &store_config,
                    if store_config.engine.is_shared() {
                        Access::Command
                    } else {
                        Access::Reader
                    },
                ) {
                    Ok(reader) => reader,
                    Err(error) => return (None, Err(error.to_string())),
                },
            };
            let mut reader = reader;
            let result = run(&mut reader).map_err(|error| error.to_string());
            (Some(reader), result)
        })
        .await;
        match joined {
            Ok((reader, result)) => {
                self.reader = reader;
                result
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// Deletes delivered rows through the writer. Borrows nothing from `self` across the
    /// await: the exporter owns a (non-`Sync`) SQLite connection.
    fn delete(&self, ids: Vec<i64>) -> impl std::future::Future<Output = bool> + Send + 'static {
        let queued = self.store.outbox_sent(ids);
        async move {
            let Ok(receiver) = queued else {
                return false;
            };
            matches!(receiver.await, Ok(Ok(())))
        }
    }

    async fn pass(&mut self) -> Pass {
        let (rows, part) = match self.parts.pop() {
            Some(part) => (part, true),
            None => match self.read(self.batch).await {
                Ok(rows) => (rows, false),
                Err(error) => {
                    error!(%error, "Cannot read the export outbox.");
                    return Pass::Backoff(Duration::ZERO);
                }
            },
        };
        if rows.is_empty() {
            return Pass::Idle;
        }
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        // Rows this receiver wrote always decode; one that does not is skipped and deleted.
        let spans: Vec<Span> = rows
            .iter()
            .filter_map(|row| Span::decode(row.span.as_slice()).ok())
            .collect();
        let count = spans.len();
        let started = tokio::time::Instant::now();
        let sink = self.sink.name();
        match self.sink.send(spans).await {
            Ok(accepted) => {
                if accepted.rejected_spans > 0 {
                    warn!(
                        rejected_spans = accepted.rejected_spans,
                        error_message = %accepted.error_message,
                        "Backend rejected part of a failure-record export."
                    );
                }
                if !self.delete(ids).await {
                    return Pass::Backoff(Duration::ZERO);
                }
                if self.batch < self.max_batch && started.elapsed() < self.timeout / 4 {
                    self.batch = self.batch.saturating_mul(2).min(self.max_batch);
                }
                self.shared
                    .counters
                    .export_sent
                    .fetch_add(count as u64, Ordering::Relaxed);
                debug!(sink, spans = count, "Failure records exported.");
                Pass::Progress
            }
            Err(error) if error.retryable => {
                if error.timed_out {
                    self.batch = (rows.len() / 2).max(1);
                    warn!(sink, spans = count, next_batch = self.batch, error = %error.message, "Failure-record export timed out; will retry with smaller batches.");
                } else {
                    warn!(sink, spans = count, error = %error.message, "Failure-record export failed; will retry.");
                }
                // A part being isolated is sent again, in halves after a timeout; fresh rows
                // are read again, as many as the batch size now allows.
                if part && !self.store_config.engine.is_shared() {
                    self.requeue(rows, error.timed_out);
                } else {
                    // On a shared store rows kept in memory through a backoff could outlive
                    // their lease and reach the backend twice (ours, and another receiver's
                    // claim): every row waiting here goes back, and is claimed again.
                    let mut ids = ids;
                    for part in self.parts.drain(..) {
                        ids.extend(part.iter().map(|row| row.id));
                    }
                    self.release(ids).await;
                }
                Pass::Backoff(error.retry_after.unwrap_or_default())
            }
            Err(error) => {
                if rows.len() > 1 {
                    warn!(sink, spans = count, error = %error.message, "Backend rejected a failure-record batch; retrying it in halves.");
                    self.requeue(rows, true);
                    return Pass::Progress;
                }
                error!(sink, spans = count, error = %error.message, "Backend rejected a failure-record span as malformed; dropping it.");
                if !self.delete(ids).await {
                    return Pass::Backoff(Duration::ZERO);
                }
                Pass::Progress
            }
        }
    }

    /// Queues `rows` to be sent on their own before new rows are read: in two halves (the
    /// first half first) when `split` and there is more than one.
    fn requeue(&mut self, mut rows: Vec<OutboxRow>, split: bool) {
        if split && rows.len() > 1 {
            let second = rows.split_off(rows.len() / 2);
            self.parts.push(second);
        }
        self.parts.push(rows);
    }
}

/// Logs, once at startup, where failure records go.
pub fn log_target(config: &ExportConfig, target: Option<&Resolved>) {
    match target {
        Some(target) => info!(
            endpoint = %target.endpoint,
            protocol = ?target.protocol,
            gzip = target.gzip,
            "Failure records will be exported over OTLP."
        ),
        None if config.phoenix.is_none() && config.langfuse.is_none() => info!(
            "No export endpoint configured (export.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT): failure records are stored but not exported."
        ),
        None => info!("No OTLP export endpoint configured: failure records go to the annotation sinks only."),
    }
    if let Some(phoenix) = &config.phoenix {
        info!(endpoint = %phoenix.endpoint, target = ?phoenix.target, "Failure records will be sent to Phoenix as span annotations.");
    }
    if let Some(langfuse) = &config.langfuse {
        info!(endpoint = %langfuse.endpoint, target = ?langfuse.target, "Failure records will be sent to Langfuse as scores.");
    }
}
