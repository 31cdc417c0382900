//! The receiver's own metrics reach an OTLP/gRPC metrics endpoint.

mod support;

use std::sync::{Arc, Mutex};

use closedloop_semconv::attribute::{
    ReceiverOutcome, ReceiverProtocol, CLOSEDLOOP_FAILURE_CATEGORY, CLOSEDLOOP_FEEDBACK_KIND,
    CLOSEDLOOP_FEEDBACK_SIGNAL, CLOSEDLOOP_FEEDBACK_SOURCE, CLOSEDLOOP_RECEIVER_OUTCOME,
    CLOSEDLOOP_RECEIVER_PROTOCOL,
};
use closedloop_semconv::metric;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use prost::Message;
use support::receiver::TestReceiver;
use support::*;

#[derive(Clone, Default)]
struct MetricsSink(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for MetricsSink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The sum of the data points of `name` whose attributes include all of `want`.
fn sum(requests: &[ExportMetricsServiceRequest], name: &str, want: &[(&str, &str)]) -> Option<i64> {
    let mut found = None;
    for metric in requests
        .iter()
        .flat_map(|request| &request.resource_metrics)
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .filter(|metric| metric.name == name)
    {
        let Some(Data::Sum(data)) = &metric.data else {
            continue;
        };
        for point in &data.data_points {
            let matches = want.iter().all(|(key, value)| {
                point.attributes.iter().any(|kv| {
                    kv.key == *key
                        && matches!(
                            kv.value.as_ref().and_then(|v| v.value.as_ref()),
                            Some(Value::StringValue(text)) if text == value
                        )
                })
            });
            if matches {
                let value = match point.value {
                    Some(Number::AsInt(value)) => value,
                    Some(Number::AsDouble(value)) => value as i64,
                    None => 0,
                };
                // Cumulative temporality: the latest point is the total.
                found = Some(value);
            }
        }
    }
    found
}

#[tokio::test]
async fn receiver_metrics_are_exported() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = MetricsSink::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(sink.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let receiver = TestReceiver::start(|config| {
        config.telemetry.metrics_endpoint = Some(format!("http://{addr}"));
        config.telemetry.metrics_interval_secs = 1;
    })
    .await;
    let judged = ids();
    let body = request(vec![
        generation_span(judged, &Generation::default()),
        generation_span(ids(), &Generation::default()),
        feedback_span(
            child(judged),
            Some(judged),
            "thumbs_down",
            vec![text(CLOSEDLOOP_FAILURE_CATEGORY, "hallucination")],
        ),
    ])
    .encode_to_vec();
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Shutdown flushes the last metrics.
    receiver.stop().await.unwrap();
    let requests = sink.0.lock().unwrap().clone();
    assert!(!requests.is_empty(), "no metrics exported");
    let accepted = sum(
        &requests,
        metric::CLOSEDLOOP_RECEIVER_SPANS,
        &[
            (
                CLOSEDLOOP_RECEIVER_OUTCOME,
                ReceiverOutcome::Accepted.as_str(),
            ),
            (
                CLOSEDLOOP_RECEIVER_PROTOCOL,
                ReceiverProtocol::HttpProtobuf.as_str(),
            ),
        ],
    );
    assert_eq!(accepted, Some(3));
    let feedback = sum(
        &requests,
        metric::CLOSEDLOOP_FEEDBACK_RECEIVED,
        &[
            (CLOSEDLOOP_FEEDBACK_SIGNAL, "thumbs_down"),
            (CLOSEDLOOP_FEEDBACK_KIND, "explicit"),
            (CLOSEDLOOP_FEEDBACK_SOURCE, "user"),
        ],
    );
    assert_eq!(
        feedback,
        Some(1),
        "feedback counted with its signal, kind and source"
    );
    let records = sum(
        &requests,
        metric::CLOSEDLOOP_FAILURE_RECORDS,
        &[(CLOSEDLOOP_FAILURE_CATEGORY, "hallucination")],
    );
    assert_eq!(
        records,
        Some(1),
        "the failure record counted with its category"
    );
    assert!(
        sum(&requests, metric::CLOSEDLOOP_EXPORT_PENDING, &[]).is_some(),
        "the outbox gauge is exported"
    );
    server.abort();
}
