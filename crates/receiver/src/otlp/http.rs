//! `POST /v1/traces`: OTLP/HTTP with protobuf and JSON bodies, optionally gzip-compressed.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::budget::Reservation;
use super::{
    decode_json, decode_protobuf, export_response, export_response_json, gunzip_bounded, Encoding,
    Ingest, OtlpError,
};

/// The OTLP/HTTP path for traces.
pub(crate) const TRACES_PATH: &str = "/v1/traces";

#[derive(Clone, Debug)]
struct TracesState {
    ingest: Ingest,
    max_body_bytes: usize,
}

/// The `/v1/traces` route. `max_body_bytes` bounds the body both as received and after
/// decompression.
pub(crate) fn routes(ingest: Ingest, max_body_bytes: usize) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export))
        .with_state(TracesState {
            ingest,
            max_body_bytes,
        })
}

async fn export(State(state): State<TracesState>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        let error = OtlpError::UnsupportedContentType(content_type.to_owned());
        tracing::debug!(%error, "OTLP/HTTP request refused.");
        return error_response(None, &error);
    };
    match handle(&state, encoding, &headers, body).await {
        Ok(response) => response,
        Err(error) => {
            if error.http_status().is_server_error() {
                tracing::warn!(%error, "OTLP/HTTP request failed.");
            } else {
                tracing::debug!(%error, "OTLP/HTTP request refused.");
            }
            error_response(Some(encoding), &error)
        }
    }
}

async fn handle(
    state: &TracesState,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let gzip = content_encoding_is_gzip(headers)?;
    let declared = declared_length(headers, state.max_body_bytes)?;
    // Admitted before a byte of the body is read: the in-flight limit and the decode budget
    // bound what reading and decoding take.
    let admission = state.ingest.admit()?;
    let reservation = admission.reservation();
    let raw = read_body(body, declared, state.max_body_bytes, reservation).await?;
    let request = decode(encoding, gzip, &raw, state.max_body_bytes, reservation)?;
    reservation.release_bytes(raw.capacity());
    drop(raw);
    let outcome = state.ingest.export(request, encoding.protocol()).await?;
    drop(admission);
    let response = export_response(&outcome);
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => export_response_json(&response),
    };
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response())
}

/// Whether the body is gzip-compressed; `identity` or no header means uncompressed.
fn content_encoding_is_gzip(headers: &HeaderMap) -> Result<bool, OtlpError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else {
        Err(OtlpError::UnsupportedContentEncoding(value.to_owned()))
    }
}

/// The body length the client declared, refused at once when over the limit.
fn declared_length(headers: &HeaderMap, limit_bytes: usize) -> Result<Option<usize>, OtlpError> {
    let Some(value) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    // hyper has already refused a malformed Content-Length; a number too large for usize is
    // over any limit.
    let declared = value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared.map(usize::try_from) {
        Some(Ok(length)) if length <= limit_bytes => Ok(Some(length)),
        Some(_) => Err(OtlpError::TooLarge { limit_bytes }),
        None => Ok(None),
    }
}

/// Reads the body, refusing more than `limit_bytes`; each growth of the buffer is charged to
/// `reservation` before it is allocated. The caller releases `capacity()` of the result.
async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    limit_bytes: usize,
    reservation: &Reservation,
) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    if let Some(length) = declared {
        reservation.charge_bytes(length)?;
        out.reserve_exact(length);
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| OtlpError::Body(error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = out.len() + data.len();
        if needed > limit_bytes {
            return Err(OtlpError::TooLarge { limit_bytes });
        }
        if needed > out.capacity() {
            // Doubling keeps the copies linear; `needed <= limit_bytes`, so the target holds it.
            let target = needed.max(out.capacity() * 2).min(limit_bytes);
            reservation.charge_bytes(target - out.capacity())?;
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

pub(crate) fn decode(
    encoding: Encoding,
    gzip: bool,
    raw: &[u8],
    limit_bytes: usize,
    reservation: &Reservation,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    if !gzip {
        return decode_body(encoding, raw, reservation);
    }
    let inflated = gunzip_bounded(raw, limit_bytes, reservation)?;
    let request = decode_body(encoding, &inflated, reservation);
    reservation.release_bytes(inflated.capacity());
    request
}

fn decode_body(
    encoding: Encoding,
    body: &[u8],
    reservation: &Reservation,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    match encoding {
        Encoding::Protobuf => decode_protobuf(body, reservation),
        Encoding::Json => decode_json(body, reservation),
    }
}

/// An error response: the status the specification asks for, a `google.rpc.Status` body in the
/// request's encoding (JSON when the request's content type was not understood) and, for
/// retryable errors, `Retry-After`.
fn error_response(encoding: Option<Encoding>, error: &OtlpError) -> Response {
    let code = error.grpc_code() as i32;
    let message = error.to_string();
    let encoding = encoding.unwrap_or(Encoding::Json);
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code,
            message,
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    let mut response = (
        error.http_status(),
        [(CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(delay) = error.retry_after() {
        // Retry-After takes whole seconds; round up so a client never retries too early.
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_encoding() {
        let mut headers = HeaderMap::new();
        assert!(!content_encoding_is_gzip(&headers).unwrap());
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
        assert!(content_encoding_is_gzip(&headers).unwrap());
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("identity"));
        assert!(!content_encoding_is_gzip(&headers).unwrap());
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(matches!(
            content_encoding_is_gzip(&headers),
            Err(OtlpError::UnsupportedContentEncoding(value)) if value == "br"
        ));
    }

    #[test]
    fn busy_error_has_retry_after_and_status_body() {
        let error = OtlpError::Busy {
            retry_after: std::time::Duration::from_millis(1500),
        };
        let response = error_response(Some(Encoding::Json), &error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
