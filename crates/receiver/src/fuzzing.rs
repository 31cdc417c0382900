//! Entry points for the fuzz targets in `fuzz/` at the repository root.
//!
//! Each function takes the bytes a client controls, runs them through the same code the
//! server runs, and panics only when an invariant of that code breaks: any other panic found
//! by the fuzzer is a bug in the receiver. Not part of the supported API.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::config::{Config, FeedbackApiConfig, ServerConfig};
use crate::feedback_api::{verify_token, FeedbackRequest};
use crate::otlp::budget::DecodeBudget;
use crate::otlp::{self, Encoding, OtlpError};
use crate::spans;

/// The wire format of an OTLP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// Decodes an OTLP/HTTP body as `POST /v1/traces` does (gunzip bounded by the default body
/// limit, then protobuf or JSON), then reads its spans as the pipeline does.
///
/// Checks that every span is either accepted or rejected, and that a partial-success message
/// is written exactly when spans were rejected.
pub fn otlp(encoding: OtlpEncoding, gzip: bool, bytes: &[u8]) {
    let Ok(request) = decode(encoding, gzip, bytes) else {
        return;
    };
    let spans_config = spans::SpansConfig::default();
    let settings = spans::ReadSettings {
        spans: &spans_config,
        store_content: true,
    };
    let parsed = spans::parse(&request, settings);
    let total = otlp::span_count(&request) as u64;
    assert_eq!(
        parsed.accepted + parsed.rejected,
        total,
        "every span is accepted or rejected"
    );
    assert_eq!(
        parsed.error_message().is_empty(),
        parsed.rejected == 0,
        "a partial-success message exactly when spans were rejected"
    );
}

/// The decode step of [`otlp`]: the body codecs of the HTTP route (bounded gunzip, the
/// pre-decode scan, the decode budget at its default limits, protobuf or JSON).
///
/// Checks that the scan never refuses a protobuf body that prost decodes within the limits:
/// the budget may refuse what is too large, never what is merely unusual.
fn decode(
    encoding: OtlpEncoding,
    gzip: bool,
    bytes: &[u8],
) -> Result<ExportTraceServiceRequest, OtlpError> {
    let server = ServerConfig::default();
    let limit_bytes = server.max_http_body_mib.saturating_mul(1024 * 1024);
    let budget = DecodeBudget::new(server.decode_limits());
    let reservation = budget.reservation();
    let encoding = match encoding {
        OtlpEncoding::Protobuf => Encoding::Protobuf,
        OtlpEncoding::Json => Encoding::Json,
    };
    let decoded = otlp::http::decode(encoding, gzip, bytes, limit_bytes, &reservation);
    if encoding == Encoding::Protobuf && !gzip {
        let prost_accepts = <ExportTraceServiceRequest as prost::Message>::decode(bytes).is_ok();
        if prost_accepts {
            assert!(
                !matches!(decoded, Err(OtlpError::Malformed(_))),
                "the scan refused a body prost decodes: {decoded:?}"
            );
        }
    }
    decoded
}

/// The secret [`feedback_body`] checks tokens against.
pub const FEEDBACK_SECRET: &str = "fuzzing-feedback-token-secret-0123456789";

/// Parses and validates a `POST /v1/feedback` body as the feedback API does, then checks its
/// token against [`FEEDBACK_SECRET`] and the referenced span.
///
/// Checks what validation promises the pipeline: non-zero ids, a score within `0.0..=1.0`,
/// a comment no longer than the configured limit.
pub fn feedback_body(bytes: &[u8]) {
    let config = FeedbackApiConfig {
        token_secret: Some(FEEDBACK_SECRET.into()),
        capture_comments: true,
        max_comment_chars: 16,
        ..FeedbackApiConfig::default()
    };
    let Ok(request) = serde_json::from_slice::<FeedbackRequest>(bytes) else {
        return;
    };
    let Ok(validated) = request.validate(&config) else {
        return;
    };
    let input = &validated.input;
    assert_ne!(
        input.trace_id, [0; 16],
        "validation refuses a zero trace id"
    );
    assert_ne!(input.span_id, [0; 8], "validation refuses a zero span id");
    if let Some(value) = input.value {
        assert!((0.0..=1.0).contains(&value), "value {value} out of range");
    }
    if let Some(comment) = &input.comment {
        assert!(comment.chars().count() <= config.max_comment_chars);
    }
    // The fuzzer cannot forge a token, so this exercises the refusals.
    let _ = verify_token(FEEDBACK_SECRET, &validated.token, input);
}

/// Parses a configuration file as `closedloop serve --config` does.
pub fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    // As `serve` does after parsing: validation must refuse with an error, never panic, and
    // what it accepts must give a pipeline configuration.
    if config.validate().is_ok() {
        let _ = config.pipeline();
    }
}
