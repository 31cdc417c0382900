//! OTLP/trace ingest: `TraceService/Export` over gRPC and `POST /v1/traces` over HTTP.
//!
//! Both transports share what lives here: the request body codecs (protobuf, JSON, gzip with a
//! bounded decompressor), the error type and its mapping onto gRPC codes and HTTP statuses, and
//! [`Ingest`], which applies the in-flight request limit, hands requests to the
//! [`Pipeline`] and counts spans for the receiver's own metrics.
//!
//! Behaviour follows the OTLP specification (`opentelemetry-proto/docs/specification.md`):
//! size limits apply to the decompressed message, partial success reports the spans the
//! pipeline rejected, and load shedding answers with a retryable status and a retry delay.

pub(crate) mod grpc;
pub(crate) mod http;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use closedloop_semconv::attribute::ReceiverProtocol;
use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::pipeline::{IngestError, IngestOutcome, Pipeline};
use crate::telemetry::ReceiverMetrics;

/// Why an OTLP export request was not (fully) processed.
///
/// Each variant maps onto the status the OTLP specification asks for; see
/// [`OtlpError::http_status`] and [`OtlpError::grpc_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The request body, after decompression, is larger than the configured limit.
    #[error("request body exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The configured limit.
        limit_bytes: usize,
    },
    /// The `Content-Type` is neither `application/x-protobuf` nor `application/json`.
    #[error("unsupported content type {0:?}; use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// The `Content-Encoding` is neither `gzip` nor `identity`.
    #[error("unsupported content encoding {0:?}; use gzip or identity")]
    UnsupportedContentEncoding(String),
    /// The body could not be read from the connection.
    #[error("failed to read the request body: {0}")]
    Body(String),
    /// The gzip stream is corrupt.
    #[error("invalid gzip body: {0}")]
    Gzip(#[source] std::io::Error),
    /// The body is not a valid protobuf `ExportTraceServiceRequest`.
    #[error("invalid protobuf body: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// The body is not a valid OTLP/JSON `ExportTraceServiceRequest`.
    #[error("invalid json body: {0}")]
    Json(#[source] serde_json::Error),
    /// Too many export requests are being processed; the client should retry later.
    #[error("too many requests in flight; retry in {} s", retry_after.as_secs())]
    Busy {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The pipeline refused the request (overloaded, or the store failed).
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl OtlpError {
    /// The HTTP status for this error, per the OTLP/HTTP specification.
    pub fn http_status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Body(_) | Self::Gzip(_) | Self::Protobuf(_) | Self::Json(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Busy { .. } | Self::Ingest(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code for this error, per the OTLP/gRPC specification.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::TooLarge { .. } => tonic::Code::ResourceExhausted,
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => {
                tonic::Code::Unimplemented
            }
            Self::Body(_) | Self::Gzip(_) | Self::Protobuf(_) | Self::Json(_) => {
                tonic::Code::InvalidArgument
            }
            Self::Busy { .. } | Self::Ingest(_) => tonic::Code::Unavailable,
        }
    }

    /// How long a client should wait before retrying, for retryable errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after } => Some(*retry_after),
            Self::Ingest(IngestError::Overloaded { retry_after }) => Some(*retry_after),
            // A failing store usually recovers (disk freed, lock released); ask for a short pause.
            Self::Ingest(_) => Some(STORE_RETRY_AFTER),
            _ => None,
        }
    }
}

/// The retry delay suggested when the store failed.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The wire format of an OTLP/HTTP request or response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The content type this encoding is served with.
    pub(crate) const fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    /// Reads a `Content-Type` header value; parameters such as `charset` are ignored.
    pub(crate) fn from_content_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Self::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// The protocol label of the receiver's span counter.
    pub(crate) const fn protocol(self) -> ReceiverProtocol {
        match self {
            Self::Protobuf => ReceiverProtocol::HttpProtobuf,
            Self::Json => ReceiverProtocol::HttpJson,
        }
    }
}

/// Decompresses a gzip body, refusing to produce more than `limit_bytes`.
///
/// The output is read through a `take(limit + 1)` adapter, so a gzip bomb costs at most
/// `limit_bytes + 1` bytes of memory before it is refused. Concatenated gzip members are
/// accepted, as RFC 1952 allows.
pub(crate) fn gunzip_bounded(body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, OtlpError> {
    // Typical OTLP payloads compress 5-10x; start there and let the vector grow.
    let mut out = Vec::with_capacity(body.len().saturating_mul(8).min(limit_bytes));
    let limit = u64::try_from(limit_bytes).unwrap_or(u64::MAX);
    MultiGzDecoder::new(body)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(OtlpError::Gzip)?;
    if out.len() > limit_bytes {
        return Err(OtlpError::TooLarge { limit_bytes });
    }
    Ok(out)
}

/// Decodes a protobuf `ExportTraceServiceRequest`.
pub(crate) fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    prost::Message::decode(body).map_err(OtlpError::Protobuf)
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
///
/// The fast path is the `opentelemetry-proto` serde mapping, which already accepts hex ids in
/// either case, 64-bit integers as strings or numbers and unknown fields. It rejects two inputs
/// the protobuf JSON mapping allows, so a body that fails the fast path is normalised and tried
/// once more:
///
/// - `null` for any field, which means the field's default (some JSON encoders write
///   `"parentSpanId": null` for root spans);
/// - `"doubleValue"` given as `"NaN"`, `"Infinity"` or `"-Infinity"`. serde_json cannot hold
///   these values, so such an attribute is kept with an empty value rather than failing
///   every span in the request.
pub(crate) fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    let first_error = match serde_json::from_slice(body) {
        Ok(request) => return Ok(request),
        Err(error) => error,
    };
    // A syntax error cannot be repaired; report the original error.
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return Err(OtlpError::Json(first_error));
    };
    if !normalize_json(&mut value) {
        return Err(OtlpError::Json(first_error));
    }
    serde_json::from_value(value).map_err(OtlpError::Json)
}

/// Removes `null` members and non-finite `doubleValue` strings; returns whether anything changed.
fn normalize_json(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|key, member| {
                let non_finite_double = key == "doubleValue"
                    && matches!(member.as_str(), Some("NaN" | "Infinity" | "-Infinity"));
                !(member.is_null() || non_finite_double)
            });
            let mut changed = map.len() != before;
            for member in map.values_mut() {
                changed |= normalize_json(member);
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| normalize_json(item) | changed),
        _ => false,
    }
}

/// Builds the response for an outcome: `partial_success` is set only when spans were rejected or
/// the pipeline had something to say.
pub(crate) fn export_response(outcome: &IngestOutcome) -> ExportTraceServiceResponse {
    let partial = outcome.rejected_spans > 0 || !outcome.error_message.is_empty();
    ExportTraceServiceResponse {
        partial_success: partial.then(|| ExportTracePartialSuccess {
            rejected_spans: outcome.rejected_spans,
            error_message: outcome.error_message.clone(),
        }),
    }
}

/// Encodes a response as OTLP/JSON.
///
/// Hand-written because the generated serde impl writes `"partialSuccess": null` for a full
/// success, where the specification expects `{}`, and `rejectedSpans` must be a decimal string.
pub(crate) fn export_response_json(response: &ExportTraceServiceResponse) -> Vec<u8> {
    let value = match &response.partial_success {
        None => serde_json::json!({}),
        Some(partial) => serde_json::json!({
            "partialSuccess": {
                "rejectedSpans": partial.rejected_spans.to_string(),
                "errorMessage": partial.error_message,
            }
        }),
    };
    value.to_string().into_bytes()
}

/// The number of spans in a request.
pub(crate) fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum()
}

/// The shared entry point of both OTLP transports.
///
/// Cheap to clone. Holds the pipeline, the in-flight limit and the self-metrics.
#[derive(Clone, Debug)]
pub(crate) struct Ingest {
    pipeline: Pipeline,
    in_flight: Arc<Semaphore>,
    busy_retry_after: Duration,
    metrics: ReceiverMetrics,
}

impl Ingest {
    /// `max_in_flight` bounds the export requests processed at once across both transports.
    pub(crate) fn new(
        pipeline: Pipeline,
        max_in_flight: usize,
        busy_retry_after: Duration,
        metrics: ReceiverMetrics,
    ) -> Self {
        Self {
            pipeline,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            busy_retry_after,
            metrics,
        }
    }

    /// Hands a decoded request to the pipeline, or sheds it when too many are in flight.
    pub(crate) async fn export(
        &self,
        request: ExportTraceServiceRequest,
        protocol: ReceiverProtocol,
    ) -> Result<IngestOutcome, OtlpError> {
        let spans = span_count(&request);
        let Ok(_permit) = self.in_flight.try_acquire() else {
            self.metrics.spans_rejected(spans, protocol);
            return Err(OtlpError::Busy {
                retry_after: self.busy_retry_after,
            });
        };
        match self.pipeline.ingest(request).await {
            Ok(outcome) => {
                let rejected = usize::try_from(outcome.rejected_spans)
                    .unwrap_or(0)
                    .min(spans);
                self.metrics.spans_accepted(spans - rejected, protocol);
                self.metrics.spans_rejected(rejected, protocol);
                Ok(outcome)
            }
            Err(error) => {
                self.metrics.spans_rejected(spans, protocol);
                Err(OtlpError::Ingest(error))
            }
        }
    }
}

#[cfg(test)]
mod tests;
