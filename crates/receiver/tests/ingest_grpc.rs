//! OTLP/gRPC `TraceService/Export` against a real receiver, with a tonic client.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::receiver::TestReceiver;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

fn request(spans: usize, padding_bytes: usize) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![0x4b; 16],
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("span {i}"),
            // Highly compressible padding to make a message of a chosen size.
            trace_state: "a".repeat(padding_bytes),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_001_000_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn client(receiver: &TestReceiver, gzip: bool) -> TraceServiceClient<Channel> {
    let client = TraceServiceClient::connect(receiver.grpc_url())
        .await
        .expect("connect")
        .max_encoding_message_size(64 << 20);
    if gzip {
        client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip)
    } else {
        client
    }
}

#[tokio::test]
async fn export_with_and_without_gzip() {
    let receiver = TestReceiver::start(|_| {}).await;
    for gzip in [false, true] {
        let response = client(&receiver, gzip)
            .await
            .export(request(5, 0))
            .await
            .unwrap_or_else(|status| panic!("gzip {gzip}: {status}"));
        assert_eq!(response.into_inner().partial_success, None);
    }
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn spans_the_pipeline_rejects_are_a_partial_success() {
    let receiver = TestReceiver::start(|_| {}).await;
    let mut partial = request(4, 0);
    // A span id must be 8 bytes.
    partial.resource_spans[0].scope_spans[0].spans[2].span_id = vec![];
    let response = client(&receiver, true)
        .await
        .export(partial)
        .await
        .expect("partial success is still OK");
    let partial_success = response
        .into_inner()
        .partial_success
        .expect("partial success");
    assert_eq!(partial_success.rejected_spans, 1);
    assert!(!partial_success.error_message.is_empty());
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_messages_get_resource_exhausted() {
    let receiver = TestReceiver::start(|config| config.server.max_grpc_message_mib = 1).await;
    let big = request(1, 2 << 20);
    assert!(big.encoded_len() > 1 << 20);
    for gzip in [false, true] {
        let status = client(&receiver, gzip)
            .await
            .export(big.clone())
            .await
            .expect_err("over the limit");
        assert_eq!(
            status.code(),
            tonic::Code::ResourceExhausted,
            "gzip {gzip}: {status}"
        );
    }
    // The server keeps serving.
    client(&receiver, true)
        .await
        .export(request(1, 0))
        .await
        .expect("a good request after an oversized one");
    receiver.stop().await.unwrap();
}

/// A message whose field 1 is a varint, where `ExportTraceServiceRequest` has a
/// length-delimited `resource_spans`: every protobuf decoder refuses it.
#[derive(Clone, PartialEq, prost::Message)]
struct Malformed {
    #[prost(uint64, tag = "1")]
    resource_spans: u64,
}

#[tokio::test]
async fn malformed_messages_get_invalid_argument() {
    let receiver = TestReceiver::start(|_| {}).await;
    let channel = Channel::from_shared(receiver.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let result: Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> = grpc
        .unary(
            tonic::Request::new(Malformed { resource_spans: 7 }),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let status = result.expect_err("malformed");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");

    client(&receiver, false)
        .await
        .export(request(1, 0))
        .await
        .expect("a good request after a malformed one");
    receiver.stop().await.unwrap();
}
