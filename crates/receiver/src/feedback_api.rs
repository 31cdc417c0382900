//! `POST /v1/feedback`: feedback from browsers and other clients of the LLM application.
//!
//! The application hands its client, with each answer, the answer's trace id and span id and a
//! feedback token minted by `closedloop-tracing` for that span. The client posts:
//!
//! ```json
//! {
//!   "response": { "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7" },
//!   "signal": "rating",
//!   "rating": 2,
//!   "scale": 5,
//!   "category": "hallucination",
//!   "comment": "It quoted the old refund policy.",
//!   "feedback_token": "…",
//!   "idempotency_id": "fb_01JD8Z6K2Q3M4N5P6R7S8T9V0W"
//! }
//! ```
//!
//! - The judged response is `response: {trace_id, span_id}`, `response: {traceparent}` or a
//!   top-level `traceparent` (W3C `traceparent` header format). Ids are hex, either case.
//!   `response` may be the JSON of `closedloop_tracing::ResponseRef` as the application
//!   received it, `feedback_token` included; a `traceparent` given with the ids must agree.
//! - `feedback_token` is verified with `feedback.token_secret` (at least 32 bytes, checked at
//!   startup): a missing, malformed, forged or expired token gets 401, a valid token minted
//!   for another span 403. The feedback judges the token's span: that span's response when it
//!   is indexed (or arrives), or, for a span above an answer (the app's request span), the
//!   answer it produced, as `closedloop_engine::join` resolves a named span. It never reaches
//!   another trace.
//! - `signal` is a `closedloop.feedback.signal` value. `value` is the normalised score in
//!   `0.0..=1.0`; alternatively `rating` on a 1-based `scale` (`(rating - 1) / (scale - 1)`).
//!   `thumbs_up` and `thumbs_down` default to 1.0 and 0.0.
//! - `category` is a `closedloop.failure.category` value. `comment` is kept only when
//!   `feedback.capture_comments` and `store.store_content` are on. `idempotency_id`,
//!   `response_id` (the response's `gen_ai.response.id`, stored with the feedback but not used
//!   to find the response, since the token names its span) and `session_id` are optional.
//! - A `traceparent` follows W3C Trace Context: two hex digits of version (not `ff`), the
//!   ids, two hex digits of flags; version `00` has exactly these four fields.
//! - Unknown fields are errors, so a misspelt optional field is not silently ignored.
//!
//! Answers: `201 Created` with `{"feedback_id": "…", "duplicate": false}` once the feedback is
//! committed to the store; `200 OK` with `"duplicate": true` when the idempotency id was seen
//! before for the same response (nothing is counted twice; the same id on another response is
//! new feedback). Errors are `{"error": {"code": "…", "message": "…"}}` with the status listed
//! on [`FeedbackApiError`].
//!
//! The body is JSON, sent as `application/json` or as `text/plain` (what
//! `navigator.sendBeacon(url, string)` sends; a `text/plain` POST needs no CORS preflight, and
//! its answer carries `Access-Control-Allow-Origin` for an origin in `feedback.allowed_origins`).
//! Any other content type gets 415.
//!
//! Each client is rate-limited by its address: the peer's, or for a peer listed in
//! `feedback.trusted_proxies` the client its `X-Forwarded-For` (else `Forwarded`) header names.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::FeedbackApiConfig;
use crate::pipeline::{
    truncate_chars, FailureCategory, FeedbackInput, FeedbackOutcome, FeedbackSignal,
    FeedbackSource, IngestError, Pipeline,
};

/// The feedback API path.
pub(crate) const FEEDBACK_PATH: &str = "/v1/feedback";

/// The longest idempotency, response and session id accepted, in bytes.
const MAX_ID_BYTES: usize = 256;

/// How long browsers may cache a CORS preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Why a feedback request was refused. Each variant documents its HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedbackApiError {
    /// 404: no token secret is configured, so feedback cannot be verified.
    #[error("the feedback api is disabled: no token secret is configured")]
    Disabled,
    /// 429: the client exceeded its request rate.
    #[error("too many feedback requests from this client; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When the client may send again.
        retry_after: Duration,
    },
    /// 415: the body is neither `application/json` nor `text/plain`.
    #[error("unsupported content type {0:?}; use application/json (or text/plain)")]
    UnsupportedContentType(String),
    /// 413: the body is larger than `feedback.max_body_kib`.
    #[error("request body exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The configured limit.
        limit_bytes: usize,
    },
    /// 400: the body could not be read or is not valid JSON of the expected shape.
    #[error("invalid request body: {0}")]
    Malformed(String),
    /// 400: a field has an invalid value.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// 401: the feedback token is missing, malformed, forged or expired.
    #[error("invalid feedback token: {0}")]
    InvalidToken(String),
    /// 403: the token is valid but was minted for a different response.
    #[error("the feedback token was issued for a different response")]
    TokenMismatch,
    /// 503: the pipeline could not take the feedback; retry later.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl FeedbackApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Disabled => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(_) | Self::InvalidField { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::TokenMismatch => StatusCode::FORBIDDEN,
            Self::Ingest(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable, machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::RateLimited { .. } => "rate_limited",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::InvalidField { .. } => "invalid_field",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenMismatch => "token_mismatch",
            Self::Ingest(_) => "unavailable",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Ingest(IngestError::Overloaded { retry_after }) => Some(*retry_after),
            Self::Ingest(_) => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for FeedbackApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(delay) = self.retry_after() {
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// The body of `POST /v1/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackRequest {
    #[serde(default)]
    response: Option<ResponseField>,
    #[serde(default)]
    traceparent: Option<String>,
    signal: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    rating: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    feedback_token: Option<String>,
    #[serde(default)]
    idempotency_id: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// `response`: the JSON form of `closedloop_tracing::ResponseRef`, which the application hands
/// its client: `{trace_id, span_id, traceparent?, feedback_token?}`, or just `{traceparent}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseField {
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    span_id: Option<String>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    feedback_token: Option<String>,
}

/// A validated request: the feedback for the pipeline and the token that must vouch for it.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) input: FeedbackInput,
    pub(crate) token: String,
}

impl FeedbackRequest {
    pub(crate) fn validate(
        self,
        config: &FeedbackApiConfig,
    ) -> Result<Validated, FeedbackApiError> {
        let (trace_id, span_id) = self.response_ids()?;
        let token = self.token()?;
        let signal: FeedbackSignal = self.signal.parse().map_err(|_| {
            FeedbackApiError::invalid(
                "signal",
                format!(
                    "unknown signal {:?}; expected one of {}",
                    self.signal,
                    signal_names()
                ),
            )
        })?;
        let value = normalized_value(signal, self.value, self.rating, self.scale)?;
        let category = self
            .category
            .map(|category| {
                category.parse::<FailureCategory>().map_err(|_| {
                    FeedbackApiError::invalid(
                        "category",
                        format!(
                            "unknown category {category:?}; expected one of {}",
                            category_names()
                        ),
                    )
                })
            })
            .transpose()?;
        let comment = self
            .comment
            .filter(|_| config.capture_comments)
            .map(|comment| truncate_chars(comment, config.max_comment_chars))
            .filter(|comment| !comment.is_empty());
        Ok(Validated {
            input: FeedbackInput {
                trace_id,
                span_id,
                response_id: bounded_id("response_id", self.response_id)?,
                signal,
                kind: None,
                value,
                category,
                comment,
                source: FeedbackSource::User,
                idempotency_id: bounded_id("idempotency_id", self.idempotency_id)?,
                session_id: bounded_id("session_id", self.session_id)?,
                user_id: None,
            },
            token,
        })
    }

    fn response_ids(&self) -> Result<([u8; 16], [u8; 8]), FeedbackApiError> {
        match (&self.response, &self.traceparent) {
            (Some(_), Some(_)) => Err(FeedbackApiError::invalid(
                "traceparent",
                "give either `response` or `traceparent`, not both",
            )),
            (None, None) => Err(FeedbackApiError::invalid(
                "response",
                "missing; give `response: {trace_id, span_id}` or `traceparent`",
            )),
            (None, Some(traceparent)) => parse_traceparent("traceparent", traceparent),
            (Some(response), None) => {
                let from_ids = match (&response.trace_id, &response.span_id) {
                    (Some(trace_id), Some(span_id)) => Some((
                        parse_id("response.trace_id", trace_id)?,
                        parse_id("response.span_id", span_id)?,
                    )),
                    (None, None) => None,
                    _ => {
                        return Err(FeedbackApiError::invalid(
                            "response",
                            "give both `trace_id` and `span_id`",
                        ))
                    }
                };
                let from_traceparent = response
                    .traceparent
                    .as_deref()
                    .map(|traceparent| parse_traceparent("response.traceparent", traceparent))
                    .transpose()?;
                match (from_ids, from_traceparent) {
                    (Some(ids), Some(other)) if ids != other => Err(FeedbackApiError::invalid(
                        "response.traceparent",
                        "does not match `trace_id` and `span_id`",
                    )),
                    (Some(ids), _) | (None, Some(ids)) => Ok(ids),
                    (None, None) => Err(FeedbackApiError::invalid(
                        "response",
                        "give `trace_id` and `span_id`, or `traceparent`",
                    )),
                }
            }
        }
    }

    /// The token: top-level `feedback_token`, or the one inside `response`.
    fn token(&self) -> Result<String, FeedbackApiError> {
        let nested = self
            .response
            .as_ref()
            .and_then(|response| response.feedback_token.as_deref());
        match (self.feedback_token.as_deref(), nested) {
            (Some(top), Some(nested)) if top != nested => Err(FeedbackApiError::invalid(
                "feedback_token",
                "differs from `response.feedback_token`",
            )),
            (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token.to_owned()),
            _ => Err(FeedbackApiError::InvalidToken(
                "`feedback_token` is missing".into(),
            )),
        }
    }
}

/// Parses a non-zero id of `N` bytes from hex, in either case.
fn parse_id<const N: usize>(
    field: &'static str,
    hex_id: &str,
) -> Result<[u8; N], FeedbackApiError> {
    let mut id = [0u8; N];
    hex::decode_to_slice(hex_id, &mut id)
        .map_err(|_| FeedbackApiError::invalid(field, format!("expected {} hex digits", N * 2)))?;
    if id == [0u8; N] {
        return Err(FeedbackApiError::invalid(
            field,
            "an all-zero id is invalid",
        ));
    }
    Ok(id)
}

/// Parses a W3C `traceparent`: `version-traceid-spanid-flags`.
fn parse_traceparent(
    field: &'static str,
    traceparent: &str,
) -> Result<([u8; 16], [u8; 8]), FeedbackApiError> {
    let mut parts = traceparent.trim().split('-');
    let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FeedbackApiError::invalid(
            field,
            "expected `version-traceid-spanid-flags`",
        ));
    };
    // W3C Trace Context: the version and the flags are two hex digits each, version ff is
    // invalid, and version 00 has exactly four fields (later versions may append more).
    if !is_hex_byte(version)
        || version.eq_ignore_ascii_case("ff")
        || !is_hex_byte(flags)
        || (version == "00" && parts.next().is_some())
    {
        return Err(FeedbackApiError::invalid(field, "not a valid traceparent"));
    }
    Ok((parse_id(field, trace_id)?, parse_id(field, span_id)?))
}

/// Whether `text` is one byte in hex: two hex digits.
fn is_hex_byte(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The normalised score, from `value` or from `rating` on `scale`.
fn normalized_value(
    signal: FeedbackSignal,
    value: Option<f64>,
    rating: Option<f64>,
    scale: Option<f64>,
) -> Result<Option<f64>, FeedbackApiError> {
    let value = match (value, rating, scale) {
        (Some(_), Some(_), _) => {
            return Err(FeedbackApiError::invalid(
                "rating",
                "give either `value` or `rating`, not both",
            ))
        }
        (Some(value), None, _) => {
            if !(0.0..=1.0).contains(&value) {
                return Err(FeedbackApiError::invalid(
                    "value",
                    "must be within 0.0..=1.0",
                ));
            }
            Some(value)
        }
        (None, Some(rating), Some(scale)) => {
            if !(scale.is_finite() && scale >= 2.0) {
                return Err(FeedbackApiError::invalid("scale", "must be at least 2"));
            }
            if !(1.0..=scale).contains(&rating) {
                return Err(FeedbackApiError::invalid(
                    "rating",
                    format!("must be within 1..={scale}"),
                ));
            }
            Some((rating - 1.0) / (scale - 1.0))
        }
        (None, Some(_), None) => {
            return Err(FeedbackApiError::invalid("scale", "required with `rating`"))
        }
        (None, None, _) => match signal {
            FeedbackSignal::ThumbsUp => Some(1.0),
            FeedbackSignal::ThumbsDown => Some(0.0),
            _ => None,
        },
    };
    if signal == FeedbackSignal::Rating && value.is_none() {
        return Err(FeedbackApiError::invalid(
            "rating",
            "a `rating` signal needs `rating` and `scale`, or `value`",
        ));
    }
    Ok(value)
}

fn bounded_id(field: &'static str, id: Option<String>) -> Result<Option<String>, FeedbackApiError> {
    match id {
        Some(id) if id.len() > MAX_ID_BYTES => Err(FeedbackApiError::invalid(
            field,
            format!("longer than {MAX_ID_BYTES} bytes"),
        )),
        Some(id) if id.chars().any(char::is_control) => Err(FeedbackApiError::invalid(
            field,
            "contains control characters",
        )),
        Some(id) if id.is_empty() => Ok(None),
        id => Ok(id),
    }
}

fn signal_names() -> String {
    closedloop_semconv::attribute::FeedbackSignal::ALL
        .iter()
        .map(|signal| signal.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn category_names() -> String {
    closedloop_semconv::attribute::FailureCategory::ALL
        .iter()
        .map(|category| category.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A token bucket per client address. The table holds at most `max_clients` buckets; a new
/// client in a full table takes the place of the least recently seen one, so filling the table
/// never locks anyone out (a forgotten client starts again with a full burst).
#[derive(Debug)]
struct RateLimiter {
    per_sec: f64,
    burst: f64,
    max_clients: usize,
    clients: Mutex<Clients>,
}

#[derive(Debug, Default)]
struct Clients {
    buckets: HashMap<IpAddr, Bucket>,
    /// Each client under the sequence number of its last request: the first is the least
    /// recently seen.
    by_seen: BTreeMap<u64, IpAddr>,
    next_seen: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    seen: u64,
}

impl RateLimiter {
    /// `None` when rate limiting is off.
    fn new(config: &FeedbackApiConfig) -> Option<Self> {
        (config.rate_limit_per_min > 0).then(|| Self {
            per_sec: f64::from(config.rate_limit_per_min) / 60.0,
            burst: f64::from(config.rate_limit_burst.max(1)),
            max_clients: config.rate_limit_max_clients.max(1),
            clients: Mutex::new(Clients::default()),
        })
    }

    /// Takes a token for `client`, or says how long until one is available.
    fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        // The critical section is a few map operations; a poisoned lock only means another
        // request panicked mid-update, and the maps are valid in any state.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Clients {
            buckets,
            by_seen,
            next_seen,
        } = &mut *clients;
        let seen = *next_seen;
        *next_seen += 1;
        let bucket = match buckets.get_mut(&client) {
            Some(bucket) => {
                by_seen.remove(&bucket.seen);
                bucket
            }
            None => {
                while buckets.len() >= self.max_clients {
                    let Some((_, oldest)) = by_seen.pop_first() else {
                        break;
                    };
                    buckets.remove(&oldest);
                }
                buckets.entry(client).or_insert(Bucket {
                    tokens: self.burst,
                    updated: now,
                    seen,
                })
            }
        };
        by_seen.insert(seen, client);
        bucket.seen = seen;
        bucket.tokens = self.refilled(*bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_sec).min(self.burst)
    }
}

/// `feedback.trusted_proxies`: the peers whose forwarding headers name the client.
#[derive(Clone, Debug, Default)]
struct TrustedProxies {
    blocks: Vec<IpBlock>,
}

/// An address block: an address and the length of its network prefix in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IpBlock {
    addr: IpAddr,
    prefix: u32,
}

impl IpBlock {
    /// Parses `192.0.2.7`, `10.0.0.0/8`, `2001:db8::1` or `2001:db8::/32`.
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = canonical(addr.parse().ok()?);
        let width = bit_width(addr);
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix.parse().ok().filter(|&prefix| prefix <= width)?,
        };
        Some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let differing = bits(self.addr) ^ bits(ip);
        self.prefix == 0 || differing >> (bit_width(ip) - self.prefix) == 0
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn bit_width(ip: IpAddr) -> u32 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The `X-Forwarded-For` header (not in the `http` crate's list).
const X_FORWARDED_FOR: &str = "x-forwarded-for";

impl TrustedProxies {
    fn parse(entries: &[String]) -> Result<Self, FeedbackConfigError> {
        let blocks = entries
            .iter()
            .map(|entry| {
                IpBlock::parse(entry)
                    .ok_or_else(|| FeedbackConfigError::InvalidTrustedProxy(entry.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { blocks })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client a request comes from. A peer that is not a trusted proxy is the client.
    /// From a trusted proxy, the client is the rightmost hop of `X-Forwarded-For` (or, when
    /// the request has none, of `Forwarded`) that is not itself a trusted proxy: hops to its
    /// left were written by the client and prove nothing. An unreadable hop, or no header,
    /// leaves the peer as the client.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops: Vec<Option<IpAddr>> = if headers.contains_key(X_FORWARDED_FOR) {
            header_items(headers, X_FORWARDED_FOR)
                .map(|item| item.and_then(parse_hop))
                .collect()
        } else {
            header_items(headers, http::header::FORWARDED.as_str())
                .map(|item| item.and_then(forwarded_for))
                .collect()
        };
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.is_trusted(*ip) => continue,
                Some(ip) => return *ip,
                None => return peer,
            }
        }
        // Every hop is a trusted proxy: the first of them sent the request.
        hops.first().copied().flatten().unwrap_or(peer)
    }
}

/// The comma-separated items of every `name` header line, in order; `None` for a line that is
/// not text.
fn header_items<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(Some).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
}

/// One hop: an address, optionally with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in
/// brackets (`[2001:db8::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    hop.strip_prefix('[')
        .and_then(|hop| hop.strip_suffix(']'))
        .and_then(|ip| ip.parse().ok())
        .map(canonical)
}

/// The `for` parameter of one `Forwarded` element (RFC 7239), e.g. `for=192.0.2.60;proto=http`
/// or `for="[2001:db8:cafe::17]:4711"`. Obfuscated and `unknown` nodes are not addresses.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

#[derive(Clone, Debug)]
struct FeedbackState {
    pipeline: Pipeline,
    config: Arc<FeedbackApiConfig>,
    rate_limiter: Option<Arc<RateLimiter>>,
    trusted_proxies: Arc<TrustedProxies>,
}

/// Why the feedback routes could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedbackConfigError {
    /// An entry of `feedback.allowed_origins` is not a valid origin.
    #[error(
        "invalid origin {0:?} in feedback.allowed_origins; expected e.g. https://app.example.com"
    )]
    InvalidOrigin(String),
    /// `feedback.token_secret` is set but shorter than 32 bytes (an empty secret included):
    /// tokens signed with it could be forged.
    #[error(
        "feedback.token_secret (CLOSEDLOOP_FEEDBACK_TOKEN_SECRET) is {bytes} bytes long; it must \
         be at least {MIN_SECRET_BYTES} bytes, e.g. 32 random bytes in base64"
    )]
    SecretTooShort {
        /// The length of the configured secret, in bytes.
        bytes: usize,
    },
    /// An entry of `feedback.trusted_proxies` is neither an IP address nor a CIDR block.
    #[error(
        "invalid entry {0:?} in feedback.trusted_proxies; expected an ip address or a cidr block \
         such as 10.0.0.0/8"
    )]
    InvalidTrustedProxy(String),
}

/// The shortest `feedback.token_secret` accepted, in bytes: the output size of SHA-256, the
/// key size HMAC-SHA256 is meant for.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Checks the `[feedback]` section as [`routes`] uses it: the token secret (when one is set)
/// is long enough, the allowed origins are origins, the trusted proxies are addresses or
/// blocks.
pub(crate) fn validate(config: &FeedbackApiConfig) -> Result<(), FeedbackConfigError> {
    check_secret(config.token_secret.as_deref())?;
    let _ = cors_layer(&config.allowed_origins)?;
    TrustedProxies::parse(&config.trusted_proxies)?;
    Ok(())
}

fn check_secret(secret: Option<&str>) -> Result<(), FeedbackConfigError> {
    match secret {
        Some(secret) if secret.len() < MIN_SECRET_BYTES => {
            Err(FeedbackConfigError::SecretTooShort {
                bytes: secret.len(),
            })
        }
        _ => Ok(()),
    }
}

/// The `/v1/feedback` route with its CORS layer. The server must provide
/// `ConnectInfo<SocketAddr>` (the peer address, or the client a trusted proxy names, is the
/// rate-limit key).
pub(crate) fn routes(
    pipeline: Pipeline,
    config: FeedbackApiConfig,
) -> Result<Router, FeedbackConfigError> {
    validate(&config)?;
    let cors = cors_layer(&config.allowed_origins)?;
    let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)?;
    let state = FeedbackState {
        pipeline,
        rate_limiter: RateLimiter::new(&config).map(Arc::new),
        trusted_proxies: Arc::new(trusted_proxies),
        config: Arc::new(config),
    };
    Ok(Router::new()
        .route(FEEDBACK_PATH, post(record))
        .layer(cors)
        .with_state(state))
}

/// The content types a JSON body is accepted with: `application/json`, and `text/plain`, which
/// `navigator.sendBeacon(url, string)` sends and which a cross-origin `fetch` may send without
/// a preflight. Either way the body is parsed as JSON.
const JSON_CONTENT_TYPES: &[&str] = &["application/json", "text/plain"];

/// CORS for the listed origins; `*` allows any origin (no credentials are involved). With an
/// empty list, preflights are answered without CORS headers, which browsers treat as a denial.
pub(crate) fn cors_layer(origins: &[String]) -> Result<CorsLayer, FeedbackConfigError> {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let origins = origins
            .iter()
            .map(|origin| {
                let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/');
                valid
                    .then(|| HeaderValue::from_str(origin).ok())
                    .flatten()
                    .ok_or_else(|| FeedbackConfigError::InvalidOrigin(origin.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(origins)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST])
        .allow_headers([CONTENT_TYPE])
        .max_age(PREFLIGHT_MAX_AGE))
}

async fn record(
    State(state): State<FeedbackState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, peer, &headers, body).await {
        Ok((outcome_status, body)) => (outcome_status, Json(body)).into_response(),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(%peer, %error, "Feedback request failed.");
            } else {
                tracing::debug!(%peer, %error, "Feedback request refused.");
            }
            error.into_response()
        }
    }
}

async fn handle(
    state: &FeedbackState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, serde_json::Value), FeedbackApiError> {
    let Some(secret) = state.config.token_secret.as_deref() else {
        return Err(FeedbackApiError::Disabled);
    };
    if let Some(limiter) = &state.rate_limiter {
        let client = state.trusted_proxies.client(peer.ip(), headers);
        limiter
            .check(client, Instant::now())
            .map_err(|retry_after| FeedbackApiError::RateLimited { retry_after })?;
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !JSON_CONTENT_TYPES
        .iter()
        .any(|accepted| essence.eq_ignore_ascii_case(accepted))
    {
        return Err(FeedbackApiError::UnsupportedContentType(
            content_type.to_owned(),
        ));
    }
    let limit_bytes = state.config.max_body_kib.saturating_mul(1024);
    let body = match Limited::new(body, limit_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(FeedbackApiError::TooLarge { limit_bytes })
        }
        Err(error) => return Err(FeedbackApiError::Malformed(error.to_string())),
    };
    let request: FeedbackRequest = serde_json::from_slice(&body)
        .map_err(|error| FeedbackApiError::Malformed(error.to_string()))?;
    let Validated { input, token } = request.validate(&state.config)?;
    verify_token(secret, &token, &input)?;
    let signal = input.signal;
    let outcome = state.pipeline.record_feedback(input).await?;
    Ok(match outcome {
        FeedbackOutcome::Recorded { feedback_id } => {
            tracing::debug!(%peer, %signal, %feedback_id, "Feedback recorded.");
            (
                StatusCode::CREATED,
                serde_json::json!({ "feedback_id": feedback_id, "duplicate": false }),
            )
        }
        FeedbackOutcome::Duplicate { feedback_id } => (
            StatusCode::OK,
            serde_json::json!({ "feedback_id": feedback_id, "duplicate": true }),
        ),
    })
}

/// Checks the token's signature and expiry, then that it was minted for the referenced span.
pub(crate) fn verify_token(
    secret: &str,
    token: &str,
    input: &FeedbackInput,
) -> Result<(), FeedbackApiError> {
    let verified =
        closedloop_tracing::verify_feedback_token(secret.as_bytes(), token, SystemTime::now())
            .map_err(|error| FeedbackApiError::InvalidToken(error.to_string()))?;
    if verified.trace_id().to_bytes() != input.trace_id
        || verified.span_id().to_bytes() != input.span_id
    {
        return Err(FeedbackApiError::TokenMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
