//! The receiver's own metrics, exported over OTLP/gRPC.
//!
//! Instruments are named by `closedloop_semconv::metric`. Span counts by protocol and outcome
//! are counted at the edge as requests are answered; feedback, failure records and the export
//! outbox are observable instruments that read [`Pipeline::stats`] at each collection. With no
//! `telemetry.metrics_endpoint` configured, nothing is recorded: the instruments come from a
//! no-op provider.

use std::time::Duration;

use closedloop_semconv::attribute::{
    ReceiverOutcome, ReceiverProtocol, CLOSEDLOOP_RECEIVER_OUTCOME, CLOSEDLOOP_RECEIVER_PROTOCOL,
};
use closedloop_semconv::{attribute, metric};
use opentelemetry::metrics::{Counter, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;
use crate::pipeline::Pipeline;

/// The instrumentation scope name of the receiver's metrics.
const SCOPE: &str = "closedloop-receiver";

/// The edge's synchronous instruments. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ReceiverMetrics {
    spans: Counter<u64>,
}

impl ReceiverMetrics {
    fn new(meter: &Meter) -> Self {
        Self {
            spans: meter
                .u64_counter(metric::CLOSEDLOOP_RECEIVER_SPANS)
                .with_unit(metric::CLOSEDLOOP_RECEIVER_SPANS_UNIT)
                .with_description("Spans received over OTLP, by outcome.")
                .build(),
        }
    }

    /// Instruments that record nothing.
    pub(crate) fn disabled() -> Self {
        Self::new(&opentelemetry::metrics::noop::NoopMeterProvider::new().meter(SCOPE))
    }

    pub(crate) fn spans_accepted(&self, count: usize, protocol: ReceiverProtocol) {
        self.add_spans(count, ReceiverOutcome::Accepted, protocol);
    }

    pub(crate) fn spans_rejected(&self, count: usize, protocol: ReceiverProtocol) {
        self.add_spans(count, ReceiverOutcome::Rejected, protocol);
    }

    fn add_spans(&self, count: usize, outcome: ReceiverOutcome, protocol: ReceiverProtocol) {
        if count == 0 {
            return;
        }
        self.spans.add(
            u64::try_from(count).unwrap_or(u64::MAX),
            &[
                KeyValue::new(CLOSEDLOOP_RECEIVER_OUTCOME, outcome.as_str()),
                KeyValue::new(CLOSEDLOOP_RECEIVER_PROTOCOL, protocol.as_str()),
            ],
        );
    }
}

/// Why self-metrics could not be set up or flushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP metric exporter could not be built (for example, an invalid endpoint).
    #[error("failed to build the otlp metric exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The last export at shutdown failed.
    #[error("failed to flush metrics at shutdown")]
    Shutdown(#[source] opentelemetry_sdk::error::OTelSdkError),
}

/// The receiver's metrics pipeline; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: Option<SdkMeterProvider>,
    metrics: ReceiverMetrics,
}

impl Telemetry {
    /// Telemetry that records nothing.
    pub(crate) fn disabled() -> Self {
        Self {
            provider: None,
            metrics: ReceiverMetrics::disabled(),
        }
    }

    /// Starts exporting metrics when an endpoint is configured. Must be called inside a tokio
    /// runtime (the gRPC exporter's connection lives on it).
    pub(crate) fn start(
        config: &TelemetryConfig,
        pipeline: &Pipeline,
    ) -> Result<Self, TelemetryError> {
        let Some(endpoint) = &config.metrics_endpoint else {
            return Ok(Self::disabled());
        };
        let exporter = MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(config.metrics_timeout_secs))
            .build()
            .map_err(TelemetryError::Exporter)?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_secs(config.metrics_interval_secs.max(1)))
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder().with_service_name("closedloop").build())
            .with_reader(reader)
            .build();
        let meter = provider.meter(SCOPE);
        register_pipeline_instruments(&meter, pipeline);
        tracing::info!(%endpoint, "Exporting receiver metrics.");
        Ok(Self {
            metrics: ReceiverMetrics::new(&meter),
            provider: Some(provider),
        })
    }

    pub(crate) fn metrics(&self) -> ReceiverMetrics {
        self.metrics.clone()
    }

    /// Exports what was recorded since the last export and stops the exporter.
    pub(crate) fn shutdown(self) -> Result<(), TelemetryError> {
        match self.provider {
            Some(provider) => provider.shutdown().map_err(TelemetryError::Shutdown),
            None => Ok(()),
        }
    }
}

/// Observable instruments over the pipeline's counters. The callbacks live as long as the
/// meter provider; `stats()` is a handful of atomic loads.
fn register_pipeline_instruments(meter: &Meter, pipeline: &Pipeline) {
    let stats = pipeline.clone();
    meter
        .u64_observable_counter(metric::CLOSEDLOOP_FEEDBACK_RECEIVED)
        .with_unit(metric::CLOSEDLOOP_FEEDBACK_RECEIVED_UNIT)
        .with_description("Feedback items accepted (after idempotency deduplication).")
        .with_callback(move |observer| {
            for ((signal, kind, source), count) in stats.feedback_breakdown() {
                observer.observe(
                    count,
                    &[
                        KeyValue::new(attribute::CLOSEDLOOP_FEEDBACK_SIGNAL, signal.as_str()),
                        KeyValue::new(attribute::CLOSEDLOOP_FEEDBACK_KIND, kind.as_str()),
                        KeyValue::new(attribute::CLOSEDLOOP_FEEDBACK_SOURCE, source.as_str()),
                    ],
                );
            }
        })
        .build();
    let stats = pipeline.clone();
    meter
        .u64_observable_counter(metric::CLOSEDLOOP_FAILURE_RECORDS)
        .with_unit(metric::CLOSEDLOOP_FAILURE_RECORDS_UNIT)
        .with_description("Failure records created.")
        .with_callback(move |observer| {
            for ((category, stage), count) in stats.failure_breakdown() {
                observer.observe(
                    count,
                    &[
                        KeyValue::new(attribute::CLOSEDLOOP_FAILURE_CATEGORY, category.as_str()),
                        KeyValue::new(attribute::CLOSEDLOOP_FAILURE_STAGE, stage.as_str()),
                    ],
                );
            }
        })
        .build();
    let stats = pipeline.clone();
    meter
        .u64_observable_counter(metric::CLOSEDLOOP_EXPORT_SENT)
        .with_unit(metric::CLOSEDLOOP_EXPORT_SENT_UNIT)
        .with_description("Failure-record spans delivered to the OTLP backend.")
        .with_callback(move |observer| observer.observe(stats.stats().export_sent, &[]))
        .build();
    let stats = pipeline.clone();
    meter
        .i64_observable_up_down_counter(metric::CLOSEDLOOP_EXPORT_PENDING)
        .with_unit(metric::CLOSEDLOOP_EXPORT_PENDING_UNIT)
        .with_description("Failure-record spans waiting in the outbox for delivery.")
        .with_callback(move |observer| {
            let pending = i64::try_from(stats.stats().export_pending).unwrap_or(i64::MAX);
            observer.observe(pending, &[]);
        })
        .build();
    // Counted by the triage task at each check (never queried from this callback).
    let triage = pipeline.clone();
    meter
        .u64_observable_gauge(metric::CLOSEDLOOP_TRIAGE_OVERDUE)
        .with_unit(metric::CLOSEDLOOP_TRIAGE_OVERDUE_UNIT)
        .with_description("Open or acknowledged failure records past their due time.")
        .with_callback(move |observer| {
            for (owner, count) in triage.triage_overdue() {
                match owner {
                    Some(owner) => observer.observe(
                        count,
                        &[KeyValue::new(
                            closedloop_semconv::attribute::CLOSEDLOOP_TRIAGE_OWNER,
                            owner,
                        )],
                    ),
                    None => observer.observe(count, &[]),
                }
            }
        })
        .build();
}
