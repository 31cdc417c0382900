//! The core of the receiver: spans and feedback in, failure records stored and exported.
//!
//! [`Pipeline::start`] opens the store and starts three workers: the store's writer thread
//! (group commit, and the join, which runs inside its transactions), the exporter task (the
//! outbox drained to the OTLP backend) and the pruning task (retention). The network edge
//! calls [`Pipeline::ingest`] and [`Pipeline::record_feedback`]; both return after the commit
//! that made their data durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub(crate) use closedloop_engine::counters::Shared;

use crate::detectors::DetectorsConfig;
use crate::export::{self, ExportConfig, ExportConfigError, Exporter, Stop};
use crate::join::JoinConfig;
use crate::records::{Feedback, SpanRef};
use crate::rules;
use crate::semantic::{EmbeddingModelError, SemanticDeriver};
use crate::spans::{self, SpansConfig};
use crate::store::{FeedbackWrite, Rejected, Store, StoreConfig, StoreError};
use closedloop_commands::review::ReviewConfig;
use closedloop_engine::monitors::{MonitorSpec, MonitoringConfig, Monitors};
use closedloop_engine::triage::{NotifyConfig, TriageConfig, TriageShared};

pub use crate::vocab::{FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource};

use closedloop_semconv::attribute::FailureStage;

/// How long an overloaded client is asked to wait before retrying.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The `[store]`, `[join]`, `[export]` and `[detectors]` sections of the receiver's
/// configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where and how long the receiver keeps what it learns (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// How feedback is matched to the response it judges (`[join]`).
    #[serde(default)]
    pub join: JoinConfig,
    /// Where failure records are sent over OTLP (`[export]`).
    #[serde(default)]
    pub export: ExportConfig,
    /// Who owns failure records and by when (`[triage]`).
    #[serde(default)]
    pub triage: TriageConfig,
    /// The daily review sample (`[review]`).
    #[serde(default)]
    pub review: ReviewConfig,
    /// Webhook notifications (`[notify]`).
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The implicit-signal detectors: rephrase, regenerate, abandon, edit (`[detectors]`).
    #[serde(default)]
    pub detectors: DetectorsConfig,
    /// Free-text feedback comments, on every path (the feedback API, OTLP feedback spans and
    /// annotations): `None` drops them, `Some(max_chars)` keeps them cut to `max_chars`
    /// characters, and only while `store.store_content` is true. Not a section of its own:
    /// [`Config::pipeline`](crate::Config::pipeline) sets it from `feedback.capture_comments`
    /// and `feedback.max_comment_chars`. Default `None`.
    #[serde(skip)]
    pub capture_comments_max_chars: Option<usize>,
    /// How spans of other instrumentations are read (`[spans]`).
    #[serde(default)]
    pub spans: SpansConfig,
    /// How the monitors decide (`[monitoring]`).
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// The monitors (`[[monitors]]`); without any, the defaults.
    #[serde(default)]
    pub monitors: Vec<MonitorSpec>,
}

/// The core pipeline. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    shared: Arc<Shared>,
    stop: watch::Sender<Stop>,
    exporter: Mutex<Option<JoinHandle<()>>>,
    pruner: Mutex<Option<JoinHandle<()>>>,
    /// SLA checks, review sampling and webhook delivery (`crate::triage`).
    triage: Mutex<Option<JoinHandle<()>>>,
    shutdown_timeout: Duration,
    shut_down: AtomicBool,
    /// The longest feedback comment kept; `None` when comments are dropped.
    comment_max_chars: Option<usize>,
    /// How spans of other instrumentations are read.
    spans: SpansConfig,
    /// `store.store_content`.
    store_content: bool,
    /// The embedding model that fingerprints queries spans carry as text only.
    semantic: Option<Arc<SemanticDeriver>>,
}

impl Inner {
    /// The part of a feedback comment that may be stored, if any.
    fn keep_comment(&self, comment: Option<String>) -> Option<String> {
        let max_chars = self.comment_max_chars?;
        Some(truncate_chars(comment?, max_chars)).filter(|comment| !comment.is_empty())
    }
}

/// `text` cut to its first `max_chars` characters.
pub(crate) fn truncate_chars(mut text: String, max_chars: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(index);
    }
    text
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the tasks; the writer commits what is queued and
        // exits once its queue closes. The outbox keeps whatever was not exported.
        for task in [&self.exporter, &self.pruner, &self.triage] {
            if let Some(task) = task.lock().unwrap_or_else(PoisonError::into_inner).take() {
                task.abort();
            }
        }
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

async fn wait<T>(receiver: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, IngestError> {
    match receiver.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(IngestError::Store(error)),
        Err(_) => Err(IngestError::Store(StoreError::WriterStopped)),
    }
}

fn rejected(rejected: Rejected) -> IngestError {
    match rejected {
        Rejected::Full => IngestError::Overloaded {
            retry_after: OVERLOADED_RETRY_AFTER,
        },
        Rejected::Stopped => IngestError::Store(StoreError::WriterStopped),
    }
}

impl Pipeline {
    /// Opens (creates, migrates) the store and spawns the writer, joiner and exporter tasks on
    /// the current tokio runtime.
    pub async fn start(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        let target = config.export.resolve().map_err(PipelineError::Export)?;
        let semantic = match config.detectors.rephrase.embedding_model_dir.clone() {
            Some(dir) => {
                let name = config.detectors.rephrase.embedding_model_name.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    SemanticDeriver::load(&dir, name.as_deref()).map(|deriver| (deriver, dir))
                })
                .await
                .map_err(|_| PipelineError::Store(StoreError::WriterStopped))?
                .map_err(PipelineError::EmbeddingModel)?;
                info!(model = loaded.0.model(), dir = %loaded.1.display(), "Embedding model loaded.");
                Some(Arc::new(loaded.0))
            }
            None => None,
        };
        export::log_target(&config.export, target.as_ref());
        let sinks = config.export.sink_names().map_err(PipelineError::Export)?;
        let shared = Arc::new(Shared {
            export_enabled: !sinks.is_empty(),
            triage: TriageShared::new(&config.triage, &config.notify),
            ..Shared::default()
        });
        let store_config = config.store.clone();
        let join_config = config.join.clone();
        let detectors_config = config.detectors.clone();
        let store_shared = Arc::clone(&shared);
        let store = tokio::task::spawn_blocking(move || {
            if !sinks.is_empty() {
                // Revisions are queued for the configured sinks, by every connection.
                let mut conn = closedloop_store::Connection::open(
                    &store_config,
                    closedloop_store::Access::Writer,
                )?;
                let removed = conn.set_outbox_sinks(&sinks)?;
                if !removed.is_empty() {
                    warn!(
                        removed = removed.join(","),
                        "Failure records are no longer queued for sinks this receiver does not configure; on a store several receivers share, configure the same sinks on each."
                    );
                }
            }
            Store::open(&store_config, &join_config, &detectors_config, store_shared)
        })
        .await
        .map_err(|_| PipelineError::Store(StoreError::WriterStopped))?
        .map_err(PipelineError::Store)?;
        let store = Arc::new(store);
        info!(
            path = %config.store.path.display(),
            pending_exports = shared.counters.export_pending.load(Ordering::Relaxed),
            "Store opened."
        );

        let (stop, stop_receiver) = watch::channel(Stop::Run);
        let exporters = Exporter::all(
            &config.export,
            config.store.clone(),
            Arc::clone(&store),
            Arc::clone(&shared),
            stop_receiver.clone(),
        )
        .map_err(PipelineError::Export)?;
        let exporter = (!exporters.is_empty()).then(|| tokio::spawn(Exporter::run_all(exporters)));
        let triage = tokio::spawn(crate::triage_task::background(
            config.store.clone(),
            config.triage.clone(),
            config.notify.clone(),
            config.review.clone(),
            config.monitoring.enabled.then(|| {
                let (monitoring, specs) = (config.monitoring.clone(), config.monitors.clone());
                let (triage, notify) = (config.triage.clone(), config.notify.clone());
                Box::new(move || Monitors::new(&monitoring, &specs, &triage, &notify))
                    as Box<dyn Fn() -> Monitors + Send>
            }),
            Arc::clone(&shared),
            stop_receiver.clone(),
        ));
        let pruner = tokio::spawn(prune_loop(
            Arc::clone(&store),
            Duration::from_secs(config.store.prune_interval_secs.max(1)),
            stop_receiver,
        ));
        Ok(Pipeline {
            inner: Arc::new(Inner {
                store,
                shared,
                stop,
                exporter: Mutex::new(exporter),
                pruner: Mutex::new(Some(pruner)),
                triage: Mutex::new(Some(triage)),
                shutdown_timeout: Duration::from_millis(config.export.shutdown_timeout_millis),
                shut_down: AtomicBool::new(false),
                comment_max_chars: config
                    .capture_comments_max_chars
                    .filter(|_| config.store.store_content),
                spans: config.spans.clone(),
                store_content: config.store.store_content,
                semantic,
            }),
        })
    }

    /// Indexes LLM response spans, records feedback spans, runs the join. Returns once
    /// everything accepted from this request is committed to the store (group commit shared
    /// with concurrent requests), so a success really means durable.
    pub async fn ingest(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<IngestOutcome, IngestError> {
        let settings = spans::ReadSettings {
            spans: &self.inner.spans,
            store_content: self.inner.store_content,
        };
        let mut parsed = spans::parse(&request, settings);
        drop(request);
        for feedback in &mut parsed.batch.feedback {
            feedback.comment = self.inner.keep_comment(feedback.comment.take());
        }
        let outcome = IngestOutcome {
            rejected_spans: parsed.rejected as i64,
            error_message: parsed.error_message(),
        };
        let (accepted, rejected_count) = (parsed.accepted, parsed.rejected);
        let mut batch = parsed.batch;
        if let Some(semantic) = &self.inner.semantic {
            if SemanticDeriver::needed(&batch.responses) {
                let semantic = Arc::clone(semantic);
                batch = tokio::task::spawn_blocking(move || {
                    semantic.fill(&mut batch.responses);
                    batch
                })
                .await
                .map_err(|_| IngestError::Store(StoreError::WriterStopped))?;
            }
        }
        if !batch.is_empty() {
            let receiver = self.inner.store.ingest(batch).map_err(rejected)?;
            wait(receiver).await?;
        }
        let counters = &self.inner.shared.counters;
        counters
            .spans_accepted
            .fetch_add(accepted, Ordering::Relaxed);
        counters
            .spans_rejected
            .fetch_add(rejected_count, Ordering::Relaxed);
        if rejected_count > 0 {
            debug!(rejected = rejected_count, error = %outcome.error_message, "Spans rejected.");
        }
        Ok(outcome)
    }

    /// Records feedback from `POST /v1/feedback` (the edge has verified its token). Returns
    /// after commit.
    pub async fn record_feedback(
        &self,
        feedback: FeedbackInput,
    ) -> Result<FeedbackOutcome, IngestError> {
        let feedback_id = feedback
            .idempotency_id
            .clone()
            .unwrap_or_else(|| format!("fb_{}", hex::encode(rand::random::<[u8; 16]>())));
        let record = Feedback {
            feedback_id: feedback_id.clone(),
            span: None,
            target: SpanRef::new(feedback.trace_id, feedback.span_id),
            response_id: feedback.response_id,
            signal: feedback.signal,
            kind: feedback
                .kind
                .unwrap_or_else(|| rules::default_kind(feedback.signal)),
            value: feedback.value.filter(|value| value.is_finite()),
            category: feedback.category,
            source: feedback.source,
            comment: self.inner.keep_comment(feedback.comment),
            session_id: feedback.session_id,
            user_id: feedback.user_id,
            time_unix_nano: spans::now_unix_nano(),
        };
        let receiver = self.inner.store.feedback(record).map_err(rejected)?;
        Ok(match wait(receiver).await? {
            FeedbackWrite::Recorded => FeedbackOutcome::Recorded { feedback_id },
            FeedbackWrite::Duplicate => FeedbackOutcome::Duplicate { feedback_id },
        })
    }

    /// Counters for self-metrics and the health endpoint.
    pub fn stats(&self) -> PipelineStats {
        let counters = &self.inner.shared.counters;
        PipelineStats {
            spans_accepted: counters.spans_accepted.load(Ordering::Relaxed),
            spans_rejected: counters.spans_rejected.load(Ordering::Relaxed),
            feedback_recorded: counters.feedback_recorded.load(Ordering::Relaxed),
            failure_records: counters.failure_records.load(Ordering::Relaxed),
            export_sent: counters.export_sent.load(Ordering::Relaxed),
            export_pending: counters.export_pending.load(Ordering::Relaxed) as u64,
        }
    }

    /// Feedback recorded since the pipeline started, by signal, kind and source.
    pub(crate) fn feedback_breakdown(
        &self,
    ) -> Vec<((FeedbackSignal, FeedbackKind, FeedbackSource), u64)> {
        self.inner.shared.counters.feedback_by.snapshot()
    }

    /// Failure records created since the pipeline started, by category and stage.
    pub(crate) fn failure_breakdown(&self) -> Vec<((FailureCategory, FailureStage), u64)> {
        self.inner.shared.counters.failure_records_by.snapshot()
    }

    /// Open or acknowledged failure records past their due time, by owner (`None`: no
    /// owner), as of the last triage check.
    pub(crate) fn triage_overdue(&self) -> Vec<(Option<String>, u64)> {
        self.inner.shared.triage.overdue()
    }

    /// Flushes pending writes, makes a last export attempt (bounded by a timeout), stops the
    /// tasks. Calling it again does nothing.
    pub async fn shutdown(&self) -> Result<(), PipelineError> {
        let inner = &self.inner;
        if inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Everything queued before this point is committed once this empty command is.
        if let Ok(receiver) = inner.store.outbox_sent(Vec::new()) {
            if let Err(IngestError::Store(error)) = wait(receiver).await {
                warn!(%error, "Last store flush failed.");
            }
        }
        let _ = inner.stop.send(Stop::Drain);
        if let Some(exporter) = take(&inner.exporter) {
            let abort = exporter.abort_handle();
            if tokio::time::timeout(inner.shutdown_timeout, exporter)
                .await
                .is_err()
            {
                abort.abort();
                warn!(
                    pending = inner.shared.counters.export_pending.load(Ordering::Relaxed),
                    "Last export attempt timed out; the outbox keeps the rest for the next start."
                );
            }
        }
        if let Some(pruner) = take(&inner.pruner) {
            pruner.abort();
        }
        // Queued notifications stay in the store for the next start.
        if let Some(triage) = take(&inner.triage) {
            triage.abort();
        }
        let store = Arc::clone(&inner.store);
        tokio::task::spawn_blocking(move || store.close_blocking())
            .await
            .map_err(|_| PipelineError::Store(StoreError::WriterStopped))?;
        info!("Pipeline stopped.");
        Ok(())
    }
}

/// Runs retention pruning every `interval`, first at startup.
async fn prune_loop(store: Arc<Store>, interval: Duration, mut stop: watch::Receiver<Stop>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(receiver) = store.prune() else {
            continue;
        };
        match wait(receiver).await {
            Ok(report) if report != Default::default() => info!(
                responses = report.responses,
                feedback = report.feedback,
                failures = report.failures,
                outbox = report.outbox,
                "Retention pruning deleted old rows."
            ),
            Ok(_) => {}
            Err(error) => warn!(%error, "Retention pruning failed."),
        }
    }
}

/// The result of an accepted [`Pipeline::ingest`] call, mapped onto OTLP partial success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The number of spans rejected as malformed; 0 means full success.
    pub rejected_spans: i64,
    /// Why spans were rejected; empty on full success.
    pub error_message: String,
}

/// Why [`Pipeline::ingest`] or [`Pipeline::record_feedback`] accepted nothing. Both variants are
/// retryable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The memory bound was reached: the edge answers HTTP 503 with `Retry-After`, or gRPC
    /// UNAVAILABLE.
    #[error("receiver overloaded, retry after {retry_after:?}")]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The store failed (503 / UNAVAILABLE).
    #[error("store failed")]
    Store(#[source] StoreError),
}

/// Why the pipeline could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The store could not be opened, migrated or flushed.
    #[error("store failed")]
    Store(#[source] StoreError),
    /// The `[export]` settings (or `OTEL_EXPORTER_OTLP_*` variables) cannot be used.
    #[error("invalid export configuration")]
    Export(#[source] ExportConfigError),
    /// `[detectors.rephrase] embedding_model_dir` does not hold a usable model.
    #[error("cannot load the embedding model")]
    EmbeddingModel(#[source] EmbeddingModelError),
}

/// One piece of feedback from the feedback API.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackInput {
    /// The trace id of the judged response span.
    pub trace_id: [u8; 16],
    /// The span id of the judged response span.
    pub span_id: [u8; 8],
    /// The response's `gen_ai.response.id`, stored with the feedback. The response is found by
    /// `trace_id` and `span_id` only, which the token vouches for.
    pub response_id: Option<String>,
    /// What the user did or said.
    pub signal: FeedbackSignal,
    /// Explicit or implicit; derived from the signal when absent.
    pub kind: Option<FeedbackKind>,
    /// The feedback normalised to 0.0 (worst) ..= 1.0 (best).
    pub value: Option<f64>,
    /// The failure category the feedback asserts.
    pub category: Option<FailureCategory>,
    /// Free text (content: kept only when the pipeline captures comments, see
    /// [`PipelineConfig::capture_comments_max_chars`]).
    pub comment: Option<String>,
    /// Who produced the feedback.
    pub source: FeedbackSource,
    /// The idempotency id: a repeated id for the same judged span is counted once.
    pub idempotency_id: Option<String>,
    /// The session of the feedback.
    pub session_id: Option<String>,
    /// The user who gave the feedback.
    pub user_id: Option<String>,
}

/// What [`Pipeline::record_feedback`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// The feedback was new and is stored.
    Recorded {
        /// The id of the stored feedback (its idempotency id when it had one).
        feedback_id: String,
    },
    /// The idempotency id was seen before; nothing changed.
    Duplicate {
        /// The id of the feedback stored earlier.
        feedback_id: String,
    },
}

/// Counters since the pipeline started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Spans accepted by [`Pipeline::ingest`] (of every kind, indexed or not).
    pub spans_accepted: u64,
    /// Spans rejected as malformed.
    pub spans_rejected: u64,
    /// Feedback items stored (duplicates excluded).
    pub feedback_recorded: u64,
    /// Failure records created (not revisions).
    pub failure_records: u64,
    /// Failure-record spans delivered to the OTLP backend.
    pub export_sent: u64,
    /// Failure-record spans waiting in the outbox.
    pub export_pending: u64,
}
