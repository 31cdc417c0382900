//! The resource and scope around exported failure-record spans.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::{SCOPE_NAME, SERVICE_NAME};

/// The `service.name` resource attribute.
const SERVICE_NAME_KEY: &str = "service.name";

/// The resource (from `[export] resource`, `service.name` defaulting to `closedloop`) and the
/// instrumentation scope of every request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Envelope {
    resource: Resource,
}

impl Envelope {
    pub(crate) fn new(attributes: &BTreeMap<String, String>) -> Envelope {
        let mut attributes = attributes.clone();
        attributes
            .entry(SERVICE_NAME_KEY.to_owned())
            .or_insert_with(|| SERVICE_NAME.to_owned());
        Envelope {
            resource: Resource {
                attributes: attributes
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(value)),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    /// One export request carrying `spans`.
    pub(crate) fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(envelope: &Envelope) -> Vec<(String, String)> {
        envelope
            .resource
            .attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(text)) => text.clone(),
                    other => panic!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    #[test]
    fn service_name_defaults_to_closedloop_and_can_be_set() {
        let default = Envelope::new(&BTreeMap::new());
        assert_eq!(
            attributes(&default),
            [("service.name".to_owned(), "closedloop".to_owned())]
        );
        let configured = Envelope::new(&BTreeMap::from([
            ("service.name".to_owned(), "rag-feedback".to_owned()),
            (
                "openinference.project.name".to_owned(),
                "support-bot".to_owned(),
            ),
        ]));
        assert_eq!(
            attributes(&configured),
            [
                (
                    "openinference.project.name".to_owned(),
                    "support-bot".to_owned()
                ),
                ("service.name".to_owned(), "rag-feedback".to_owned()),
            ]
        );
    }
}
