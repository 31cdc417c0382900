//! The alert span: a trace of its own per alert, a span when it fires and a child when it
//! resolves (see `span.closedloop.alert` in the conventions).

use closedloop_semconv::attribute as attr;
use closedloop_semconv::span::alert_name;
use closedloop_store::records::Alert;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::timefmt::format_rfc3339;
use crate::vocab::AlertStatus;

/// The alert's stable id (`closedloop.alert.id`).
pub fn alert_id(alert: &Alert) -> String {
    format!("alert_{}", alert.id)
}

fn digest(alert: &Alert, part: u8) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"closedloop.alert")
        .chain_update(alert.monitor.as_bytes())
        .chain_update(alert.fired_s.to_be_bytes())
        .chain_update([part])
        .finalize()
        .into()
}

/// The alert's trace id: derived from the monitor and the time it fired, so the same alert
/// exported by two receivers is one trace.
pub fn alert_trace_id(alert: &Alert) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest(alert, 0)[..16]);
    id
}

fn span_id(alert: &Alert, status: AlertStatus) -> [u8; 8] {
    let part = match status {
        AlertStatus::Resolved => 2,
        _ => 1,
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest(alert, part)[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// The span of an alert's firing or resolution.
pub fn build(alert: &Alert, status: AlertStatus) -> Span {
    use any_value::Value::{DoubleValue, StringValue};
    let at_s = match status {
        AlertStatus::Resolved => alert.resolved_s.unwrap_or(alert.fired_s),
        _ => alert.fired_s,
    };
    let at_ns = u64::try_from(at_s)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let mut attributes = vec![
        kv(attr::CLOSEDLOOP_ALERT_ID, StringValue(alert_id(alert))),
        kv(
            attr::CLOSEDLOOP_ALERT_MONITOR,
            StringValue(alert.monitor.clone()),
        ),
        kv(attr::CLOSEDLOOP_ALERT_KIND, StringValue(alert.kind.clone())),
        kv(
            attr::CLOSEDLOOP_ALERT_STATUS,
            StringValue(status.as_str().to_owned()),
        ),
        kv(
            attr::CLOSEDLOOP_ALERT_BASELINE_RATE,
            DoubleValue(alert.baseline_rate),
        ),
        kv(
            attr::CLOSEDLOOP_ALERT_OBSERVED_RATE,
            DoubleValue(alert.observed_rate),
        ),
        kv(
            attr::CLOSEDLOOP_ALERT_STATISTIC,
            DoubleValue(alert.statistic),
        ),
        kv(
            attr::CLOSEDLOOP_ALERT_THRESHOLD,
            DoubleValue(alert.threshold),
        ),
    ];
    if let Some(owner) = &alert.owner {
        attributes.push(kv(
            attr::CLOSEDLOOP_TRIAGE_OWNER,
            StringValue(owner.clone()),
        ));
    }
    if let Some(due_s) = alert.due_s {
        attributes.push(kv(
            attr::CLOSEDLOOP_TRIAGE_DUE_TIME,
            StringValue(format_rfc3339(due_s)),
        ));
    }
    Span {
        trace_id: alert_trace_id(alert).to_vec(),
        span_id: span_id(alert, status).to_vec(),
        parent_span_id: match status {
            AlertStatus::Resolved => span_id(alert, AlertStatus::Firing).to_vec(),
            _ => Vec::new(),
        },
        name: alert_name(&alert.monitor),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: at_ns,
        end_time_unix_nano: at_ns,
        attributes,
        ..Default::default()
    }
}

/// [`build`], encoded as protobuf for the outbox.
pub fn encode(alert: &Alert, status: AlertStatus) -> Vec<u8> {
    build(alert, status).encode_to_vec()
}
