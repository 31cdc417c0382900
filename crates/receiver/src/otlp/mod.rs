//! OTLP/trace ingest: `TraceService/Export` over gRPC and `POST /v1/traces` over HTTP.
//!
//! Both transports share what lives here: the request body codecs (protobuf, JSON, gzip with a
//! bounded decompressor), the error type and its mapping onto gRPC codes and HTTP statuses, and
//! [`Ingest`], which admits a request before its body is read (the in-flight request limit and
//! a share of the decode budget), hands requests to the [`Pipeline`] and counts spans for the
//! receiver's own metrics.
//!
//! Memory is bounded before it is spent: the body is charged to the request's
//! [`budget::Reservation`] as it arrives and as it inflates, and [`scan`] reads the decoded size
//! from the wire bytes before decoding, so a request that would decode too large is refused
//! (413 / `RESOURCE_EXHAUSTED`) and one that does not fit beside the requests in flight is shed
//! (503 / `UNAVAILABLE` with a retry delay) without being decoded.
//!
//! Behaviour follows the OTLP specification (`opentelemetry-proto/docs/specification.md`):
//! size limits apply to the decompressed message, partial success reports the spans the
//! pipeline rejected, and load shedding answers with a retryable status and a retry delay.

pub(crate) mod budget;
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod scan;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use closedloop_semconv::attribute::ReceiverProtocol;
use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::budget::{DecodeBudget, DecodeLimits, Reservation};
pub use self::scan::ScanError;

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
    /// Decoding the request would take more memory than one request may.
    #[error(
        "decoding the request would take {estimate_bytes} bytes, over the limit of {limit_bytes}"
    )]
    DecodedTooLarge {
        /// The scan's estimate, in bytes.
        estimate_bytes: usize,
        /// The configured limit, in bytes.
        limit_bytes: usize,
    },
    /// The request holds more messages (spans, attributes, values) than one request may.
    #[error("the request holds {elements} messages, over the limit of {limit}")]
    TooManyElements {
        /// The messages counted by the scan.
        elements: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not a well-formed protobuf message, as found before decoding.
    #[error("invalid protobuf body: {0}")]
    Malformed(#[source] ScanError),
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
            Self::TooLarge { .. } | Self::DecodedTooLarge { .. } | Self::TooManyElements { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Body(_)
            | Self::Gzip(_)
            | Self::Protobuf(_)
            | Self::Malformed(_)
            | Self::Json(_) => StatusCode::BAD_REQUEST,
            Self::Busy { .. } | Self::Ingest(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code for this error, per the OTLP/gRPC specification.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::TooLarge { .. } | Self::DecodedTooLarge { .. } | Self::TooManyElements { .. } => {
                tonic::Code::ResourceExhausted
            }
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => {
                tonic::Code::Unimplemented
            }
            Self::Body(_)
            | Self::Gzip(_)
            | Self::Protobuf(_)
            | Self::Malformed(_)
            | Self::Json(_) => tonic::Code::InvalidArgument,
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

/// The most a gzip body is inflated by in one read, and the first size of its buffer.
const INFLATE_CHUNK_BYTES: usize = 64 * 1024;

/// Decompresses a gzip body, refusing to produce more than `limit_bytes`.
///
/// The output buffer grows by doubling, each step charged to `reservation` before it is
/// allocated and capped at `limit_bytes + 1`, so a gzip bomb costs at most that before it is
/// refused, and a body that would take the requests in flight over the decode budget is shed
/// while it inflates. The caller releases `capacity()` of the result when it drops it.
/// Concatenated gzip members are accepted, as RFC 1952 allows.
pub(crate) fn gunzip_bounded(
    body: &[u8],
    limit_bytes: usize,
    reservation: &Reservation,
) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    let mut decoder = MultiGzDecoder::new(body);
    loop {
        if out.len() == out.capacity() {
            // Double, so the copies stay linear, but never past the limit plus one byte.
            let grow = out
                .capacity()
                .max(INFLATE_CHUNK_BYTES)
                .min(limit_bytes.saturating_add(1) - out.capacity());
            reservation.charge_bytes(grow)?;
            out.reserve_exact(grow);
        }
        let len = out.len();
        let chunk = (out.capacity() - len).min(INFLATE_CHUNK_BYTES);
        out.resize(len + chunk, 0);
        match decoder.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                return Ok(out);
            }
            Ok(read) => out.truncate(len + read),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => out.truncate(len),
            Err(error) => return Err(OtlpError::Gzip(error)),
        }
        if out.len() > limit_bytes {
            return Err(OtlpError::TooLarge { limit_bytes });
        }
    }
}

/// Scans, charges and decodes a protobuf `ExportTraceServiceRequest`.
pub(crate) fn decode_protobuf(
    body: &[u8],
    reservation: &Reservation,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    let estimate = scan::scan_protobuf(body).map_err(OtlpError::Malformed)?;
    reservation.charge_decode(estimate.elements, estimate.decoded_bytes)?;
    prost::Message::decode(body).map_err(OtlpError::Protobuf)
}

/// Scans, charges and decodes an OTLP/JSON `ExportTraceServiceRequest`.
///
/// The fast path is the `opentelemetry-proto` serde mapping, which already accepts hex ids in
/// either case, 64-bit integers as strings or numbers and unknown fields. It rejects two inputs
/// the protobuf JSON mapping allows, so a body that has them (the scan tells) and fails the
/// fast path is normalised and tried once more:
///
/// - `null` for any field, which means the field's default (some JSON encoders write
///   `"parentSpanId": null` for root spans);
/// - `"doubleValue"` given as `"NaN"`, `"Infinity"` or `"-Infinity"`. serde_json cannot hold
///   these values, so such an attribute is kept with an empty value rather than failing
///   every span in the request.
///
/// The fallback holds the body as a `serde_json::Value`, which is charged on top.
pub(crate) fn decode_json(
    body: &[u8],
    reservation: &Reservation,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    let estimate = scan::scan_json(body).map_err(OtlpError::Json)?;
    reservation.charge_decode(estimate.elements, estimate.decoded_bytes)?;
    let first_error = match serde_json::from_slice(body) {
        Ok(request) => return Ok(request),
        Err(error) => error,
    };
    if !estimate.needs_normalising {
        return Err(OtlpError::Json(first_error));
    }
    reservation.charge_decode(0, estimate.fallback_bytes)?;
    // The scan has parsed the body, so this cannot fail on syntax.
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
/// Cheap to clone. Holds the pipeline, the in-flight limit, the decode budget and the
/// self-metrics. A request is [admitted](Ingest::admit) before its body is read, and its
/// [`Admission`] is held until the pipeline is done with it.
#[derive(Clone, Debug)]
pub(crate) struct Ingest {
    pipeline: Pipeline,
    in_flight: Arc<Semaphore>,
    budget: Arc<DecodeBudget>,
    busy_retry_after: Duration,
    metrics: ReceiverMetrics,
}

/// An admitted request: its place among the requests in flight and its share of the decode
/// budget, both returned when dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    reservation: Reservation,
}

impl Admission {
    /// The request's share of the decode budget, to charge as it is read and decoded.
    pub(crate) fn reservation(&self) -> &Reservation {
        &self.reservation
    }
}

impl Ingest {
    /// `max_in_flight` bounds the export requests processed at once across both transports;
    /// `limits` bound the memory they take.
    pub(crate) fn new(
        pipeline: Pipeline,
        max_in_flight: usize,
        limits: DecodeLimits,
        metrics: ReceiverMetrics,
    ) -> Self {
        Self {
            pipeline,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            busy_retry_after: limits.retry_after,
            budget: DecodeBudget::new(limits),
            metrics,
        }
    }

    /// Admits a request before its body is read, or sheds it when too many are in flight.
    pub(crate) fn admit(&self) -> Result<Admission, OtlpError> {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return Err(OtlpError::Busy {
                retry_after: self.busy_retry_after,
            });
        };
        Ok(Admission {
            _permit: permit,
            reservation: self.budget.reservation(),
        })
    }

    /// Hands a decoded request to the pipeline. The caller holds the request's [`Admission`]
    /// until this returns.
    pub(crate) async fn export(
        &self,
        request: ExportTraceServiceRequest,
        protocol: ReceiverProtocol,
    ) -> Result<IngestOutcome, OtlpError> {
        let spans = span_count(&request);
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
