//! `ResponseRef`: what the application hands to its client with each answer.

use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::layer::ClosedloopLayer;
use crate::token::issue_feedback_token;

/// A reference to one answer's generation span: trace id, span id and W3C `traceparent`, plus
/// an optional signed feedback token.
///
/// Serialises as
/// `{"trace_id": "<32 hex>", "span_id": "<16 hex>", "traceparent": "00-…-…-01", "feedback_token": "…"}`
/// (`feedback_token` only when set). When deserialising, `traceparent` may be left out; when
/// present it must agree with the ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct ResponseRef {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    feedback_token: Option<String>,
}

impl ResponseRef {
    /// A reference from ids; `None` if either is the all-zero invalid id.
    pub fn from_ids(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Option<Self> {
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID)
            .then(|| Self::from_valid_ids(trace_id, span_id, sampled))
    }

    /// A reference from ids already checked to be valid.
    pub(crate) fn from_valid_ids(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Self {
        ResponseRef {
            trace_id,
            span_id,
            sampled,
            feedback_token: None,
        }
    }

    /// A reference to the span with this context; `None` if the context is invalid.
    pub fn from_span_context(cx: &SpanContext) -> Option<Self> {
        Self::from_ids(cx.trace_id(), cx.span_id(), cx.is_sampled())
    }

    /// A reference to the OpenTelemetry span of a `tracing` span; `None` without an
    /// OpenTelemetry layer.
    pub fn from_span(span: &tracing::Span) -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        Self::from_span_context(span.context().span().span_context())
    }

    /// A reference to the generation span that is current or encloses the current span;
    /// `None` if there is none, or without a [`ClosedloopLayer`] and an OpenTelemetry layer.
    pub fn current() -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        tracing::Span::current()
            .with_subscriber(|(id, dispatch)| {
                let layer = ClosedloopLayer::find(dispatch)?;
                let generation = layer.find_generation(dispatch, id)?;
                let cx = tracing_opentelemetry::get_otel_context(&generation, dispatch)?;
                Self::from_span_context(cx.span().span_context())
            })
            .flatten()
    }

    /// Adds a feedback token signed with `secret` that expires at `expires_at`; see
    /// [`verify_feedback_token`](crate::verify_feedback_token).
    pub fn with_feedback_token(mut self, secret: &[u8], expires_at: SystemTime) -> Self {
        self.feedback_token = Some(issue_feedback_token(
            secret,
            self.trace_id,
            self.span_id,
            expires_at,
        ));
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id of the judged span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether the response was sampled.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The feedback token, if one was added.
    pub fn feedback_token(&self) -> Option<&str> {
        self.feedback_token.as_deref()
    }

    /// The W3C `traceparent` of the judged span.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            self.trace_flags().to_u8()
        )
    }

    /// The judged span as a remote span context, the parent and link target of feedback spans.
    pub fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            self.trace_flags(),
            true,
            TraceState::default(),
        )
    }

    fn trace_flags(&self) -> TraceFlags {
        if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        }
    }
}

/// The serialised form of a [`ResponseRef`].
#[derive(Serialize, Deserialize)]
struct Wire {
    trace_id: String,
    span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedback_token: Option<String>,
}

impl From<ResponseRef> for Wire {
    fn from(r: ResponseRef) -> Self {
        Wire {
            trace_id: r.trace_id.to_string(),
            span_id: r.span_id.to_string(),
            traceparent: Some(r.traceparent()),
            feedback_token: r.feedback_token,
        }
    }
}

/// Why a serialised [`ResponseRef`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseRefError {
    /// The trace id is not 32 hex digits, or is all zeros.
    #[error("invalid trace id")]
    TraceId,
    /// The span id is not 16 hex digits, or is all zeros.
    #[error("invalid span id")]
    SpanId,
    /// The `traceparent` is malformed or names another span.
    #[error("traceparent does not match the trace and span ids")]
    Traceparent,
}

fn parse_hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl TryFrom<Wire> for ResponseRef {
    type Error = ResponseRefError;

    fn try_from(w: Wire) -> Result<Self, Self::Error> {
        let trace_id = parse_hex_id::<16>(&w.trace_id)
            .map(TraceId::from_bytes)
            .filter(|id| *id != TraceId::INVALID)
            .ok_or(ResponseRefError::TraceId)?;
        let span_id = parse_hex_id::<8>(&w.span_id)
            .map(SpanId::from_bytes)
            .filter(|id| *id != SpanId::INVALID)
            .ok_or(ResponseRefError::SpanId)?;
        let sampled = match &w.traceparent {
            None => true,
            Some(tp) => {
                let parts: Vec<&str> = tp.split('-').collect();
                let [version, tp_trace, tp_span, flags] = parts[..] else {
                    return Err(ResponseRefError::Traceparent);
                };
                let flags = parse_hex_id::<1>(flags).ok_or(ResponseRefError::Traceparent)?;
                if version != "00"
                    || !tp_trace.eq_ignore_ascii_case(&w.trace_id)
                    || !tp_span.eq_ignore_ascii_case(&w.span_id)
                {
                    return Err(ResponseRefError::Traceparent);
                }
                flags[0] & 1 == 1
            }
        };
        Ok(ResponseRef {
            trace_id,
            span_id,
            sampled,
            feedback_token: w.feedback_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResponseRef {
        ResponseRef::from_ids(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            true,
        )
        .unwrap()
    }

    #[test]
    fn serialises_ids_and_traceparent() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            })
        );
        let back: ResponseRef = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn round_trips_with_a_token() {
        let r = sample().with_feedback_token(b"secret", SystemTime::now());
        let json = serde_json::to_string(&r).unwrap();
        let back: ResponseRef = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(back.feedback_token().is_some());
    }

    #[test]
    fn rejects_inconsistent_or_invalid_input() {
        let bad_tp = serde_json::json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
        });
        assert!(serde_json::from_value::<ResponseRef>(bad_tp).is_err());
        let zero = serde_json::json!({
            "trace_id": "00000000000000000000000000000000",
            "span_id": "00f067aa0ba902b7",
        });
        assert!(serde_json::from_value::<ResponseRef>(zero).is_err());
        let unsampled = serde_json::json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        });
        let r: ResponseRef = serde_json::from_value(unsampled).unwrap();
        assert!(!r.is_sampled());
    }
}
