//! Shared fixtures: a subscriber with both layers, in either order, exporting to memory.

#![allow(dead_code)] // Each test file uses a different subset.

use closedloop_tracing::ClosedloopLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Registry;

/// Where `ClosedloopLayer` sits relative to the OpenTelemetry layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// `.with(otel).with(closedloop)`
    OtelFirst,
    /// `.with(closedloop).with(otel)`
    ClosedloopFirst,
}

pub(crate) const BOTH_ORDERS: [Order; 2] = [Order::OtelFirst, Order::ClosedloopFirst];

pub(crate) struct Harness {
    pub(crate) exporter: InMemorySpanExporter,
    pub(crate) provider: SdkTracerProvider,
    pub(crate) dispatch: Dispatch,
}

pub(crate) fn harness(order: Order, layer: ClosedloopLayer) -> Harness {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("test");
    let dispatch = match order {
        Order::OtelFirst => Dispatch::new(
            Registry::default()
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .with(layer),
        ),
        Order::ClosedloopFirst => Dispatch::new(
            Registry::default()
                .with(layer)
                .with(tracing_opentelemetry::layer().with_tracer(tracer)),
        ),
    };
    Harness {
        exporter,
        provider,
        dispatch,
    }
}

impl Harness {
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    pub(crate) fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }

    /// The one exported span with this name.
    pub(crate) fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        let mut matching = spans.iter().filter(|s| s.name == name);
        let span = matching
            .next()
            .unwrap_or_else(|| panic!("no span named {name:?} in {:?}", names(&spans)));
        assert!(matching.next().is_none(), "several spans named {name:?}");
        span.clone()
    }
}

pub(crate) fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// The value of `key` on `span`; fails the test if the key appears twice.
pub(crate) fn attr(span: &SpanData, key: &str) -> Option<Value> {
    let mut values = span.attributes.iter().filter(|kv| kv.key.as_str() == key);
    let value = values.next().map(|kv| kv.value.clone());
    assert!(
        values.next().is_none(),
        "{key} appears twice on {}",
        span.name
    );
    value
}

pub(crate) fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub(crate) fn attr_strings(span: &SpanData, key: &str) -> Option<Vec<String>> {
    match attr(span, key)? {
        Value::Array(Array::String(values)) => {
            Some(values.iter().map(|v| v.as_str().to_owned()).collect())
        }
        other => panic!("{key} is not a string array: {other:?}"),
    }
}
