//! The ingest token: `Authorization: Bearer <token>` on `POST /v1/traces` and on OTLP/gRPC.
//!
//! Both transports read the same header (gRPC metadata is HTTP/2 headers) and compare it with
//! [`IngestToken::matches`]: both sides are hashed with SHA-256 and the digests compared in
//! constant time, so neither the token's bytes nor its length leak through response timing.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::otlp::Encoding;

/// The bearer token OTLP clients must send to export spans (`server.ingest_token`).
///
/// Its value never appears in `{:?}` output or logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IngestToken(String);

/// Why a string cannot be an ingest token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestTokenError {
    /// The token is empty.
    #[error("the ingest token is empty")]
    Empty,
    /// The token holds a character a header value cannot carry after `Bearer ` (only visible
    /// ASCII without spaces is allowed).
    #[error("the ingest token may only hold visible ASCII characters without spaces")]
    InvalidCharacter,
}

impl IngestToken {
    /// A token; it must be non-empty visible ASCII without spaces, e.g. the output of
    /// `openssl rand -hex 32`.
    pub fn new(token: impl Into<String>) -> Result<Self, IngestTokenError> {
        let token = token.into();
        if token.is_empty() {
            return Err(IngestTokenError::Empty);
        }
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(IngestTokenError::InvalidCharacter);
        }
        Ok(Self(token))
    }

    /// Whether the headers carry `Authorization: Bearer <this token>`. The scheme is
    /// case-insensitive (RFC 9110); the token is compared in constant time.
    pub(crate) fn matches(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(AUTHORIZATION)
            .and_then(|value| bearer_token(value.as_bytes()))
        else {
            return false;
        };
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented);
        let difference = expected
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl TryFrom<String> for IngestToken {
    type Error = IngestTokenError;

    fn try_from(token: String) -> Result<Self, Self::Error> {
        Self::new(token)
    }
}

impl std::fmt::Debug for IngestToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestToken(<redacted>)")
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    let scheme = value.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = value[SCHEME.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

const UNAUTHENTICATED_MESSAGE: &str = "missing or invalid ingest token";

/// Requires `token` on every route of `routes` (the OTLP/HTTP ones). Without a token, warns
/// when one of the OTLP `listeners` is reachable from other hosts.
pub(crate) fn protect(
    routes: Router,
    token: Option<&IngestToken>,
    listeners: &[&TcpListener],
) -> Router {
    if let Some(token) = token {
        return routes.route_layer(axum::middleware::from_fn_with_state(
            token.clone(),
            require_http,
        ));
    }
    let exposed = listeners.iter().any(|listener| {
        listener
            .local_addr()
            .is_ok_and(|addr| !addr.ip().is_loopback())
    });
    if exposed {
        tracing::warn!(
            "No ingest token configured; anyone who reaches the OTLP ports can send spans."
        );
    }
    routes
}

/// The middleware of [`protect`]: without the token, HTTP 401 with
/// `WWW-Authenticate: Bearer` and a `google.rpc.Status` body in the request's encoding.
pub(crate) async fn require_http(
    State(token): State<IngestToken>,
    request: Request,
    next: Next,
) -> Response {
    if token.matches(request.headers()) {
        return next.run(request).await;
    }
    tracing::debug!("OTLP/HTTP request refused: missing or invalid ingest token.");
    let encoding = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Json);
    let code = tonic::Code::Unauthenticated as i32;
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code,
            message: UNAUTHENTICATED_MESSAGE.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": UNAUTHENTICATED_MESSAGE })
            .to_string()
            .into_bytes(),
    };
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static(encoding.content_type()),
            ),
            (WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
        ],
        Body::from(body),
    )
        .into_response()
}

/// The gRPC interceptor: without the token, `UNAUTHENTICATED`. `None` lets every call through.
#[derive(Clone, Debug)]
pub(crate) struct GrpcAuth(pub(crate) Option<IngestToken>);

impl tonic::service::Interceptor for GrpcAuth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        // gRPC metadata keys are lowercase HTTP/2 headers, so the HTTP check applies as is.
        if token.matches(request.metadata().as_ref()) {
            Ok(request)
        } else {
            tracing::debug!("OTLP/gRPC request refused: missing or invalid ingest token.");
            Err(tonic::Status::unauthenticated(UNAUTHENTICATED_MESSAGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = IngestToken::new("s3cr3t-token").unwrap();
        assert!(token.matches(&headers("Bearer s3cr3t-token")));
        assert!(token.matches(&headers("bearer  s3cr3t-token ")));
        assert!(!token.matches(&headers("Bearer s3cr3t-tokeN")));
        assert!(!token.matches(&headers("Bearer s3cr3t-token2")));
        assert!(!token.matches(&headers("Bearer s3cr3t")));
        assert!(!token.matches(&headers("Basic s3cr3t-token")));
        assert!(!token.matches(&headers("Bearer ")));
        assert!(!token.matches(&HeaderMap::new()));
    }

    #[test]
    fn tokens_are_validated_and_redacted() {
        assert_eq!(IngestToken::new(""), Err(IngestTokenError::Empty));
        assert_eq!(
            IngestToken::new("two words"),
            Err(IngestTokenError::InvalidCharacter)
        );
        let token = IngestToken::new("hunter2").unwrap();
        assert!(!format!("{token:?}").contains("hunter2"));
    }
}
