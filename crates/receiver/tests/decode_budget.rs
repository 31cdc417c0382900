//! The decode budget against a real receiver: requests that amplify when decoded are refused as
//! too large before they are decoded, requests beyond the memory in flight are shed as busy
//! with a retry delay, a huge `Content-Length` is refused before the body is read, and the
//! receiver keeps serving.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::gzip;
use support::receiver::TestReceiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic_types::StatusExt;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn span(attributes: Vec<KeyValue>) -> Span {
    let ids = support::ids();
    Span {
        trace_id: ids.0.to_vec(),
        span_id: ids.1.to_vec(),
        name: "chat gpt-4o".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes,
        ..Default::default()
    }
}

/// A normal request.
fn small() -> ExportTraceServiceRequest {
    support::request(vec![span(vec![support::text("gen_ai.system", "openai")])])
}

/// One span with `count` empty attributes: 2 bytes each on the wire, a `KeyValue` decoded.
fn empty_attributes(count: usize) -> ExportTraceServiceRequest {
    support::request(vec![span(vec![KeyValue::default(); count])])
}

/// A valid request of about `bytes` bytes, which decodes to about its size.
fn padded(bytes: usize) -> ExportTraceServiceRequest {
    let mut span = span(Vec::new());
    span.trace_state = "a".repeat(bytes);
    support::request(vec![span])
}

/// OTLP/JSON of one attribute whose value nests arrays `depth` deep, the innermost holding
/// `leaves` empty values: each AnyValue level re-buffers what is under it while decoding.
fn nested_json(depth: usize, leaves: usize) -> Vec<u8> {
    let mut value = format!(
        "{{\"arrayValue\":{{\"values\":[{}]}}}}",
        vec!["{}"; leaves].join(",")
    );
    for _ in 0..depth {
        value = format!("{{\"arrayValue\":{{\"values\":[{value}]}}}}");
    }
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"x","attributes":[{{"key":"deep","value":{value}}}]}}]}}]}}]}}"#
    )
    .into_bytes()
}

async fn grpc_client(receiver: &TestReceiver) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(receiver.grpc_url())
        .await
        .expect("connect")
        .max_encoding_message_size(64 << 20)
        .send_compressed(CompressionEncoding::Gzip)
}

/// The receiver still takes a normal request over both transports.
async fn assert_serves(receiver: &TestReceiver) {
    let response = receiver
        .post_traces(PROTOBUF, false, small().encode_to_vec())
        .await;
    assert_eq!(response.status(), 200);
    grpc_client(receiver)
        .await
        .export(small())
        .await
        .expect("a normal gRPC request");
}

/// Limits small enough to reach with test-sized inputs.
fn small_limits(config: &mut closedloop_receiver::Config) {
    config.server.max_http_body_mib = 4;
    config.server.max_grpc_message_mib = 4;
    config.server.max_decoded_request_mib = 8;
    config.server.max_request_elements = 300_000;
}

#[tokio::test]
async fn amplifying_protobuf_bodies_are_too_large() {
    let receiver = TestReceiver::start(small_limits).await;
    // 100000 empty attributes: 200 KB on the wire, over 8 MiB decoded, under the element
    // limit.
    let body = empty_attributes(100_000).encode_to_vec();
    assert!(body.len() < 250_000);
    for gzip_body in [false, true] {
        let response = receiver
            .post_traces(PROTOBUF, gzip_body, body.clone())
            .await;
        assert_eq!(response.status(), 413, "gzip {gzip_body}");
        assert!(response.headers().get("retry-after").is_none());
    }
    // Over the element limit.
    let response = receiver
        .post_traces(PROTOBUF, true, empty_attributes(400_000).encode_to_vec())
        .await;
    assert_eq!(response.status(), 413);
    assert_serves(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn amplifying_json_bodies_are_too_large() {
    let receiver = TestReceiver::start(small_limits).await;
    // 30 levels of arrays around 20000 empty values: 60 KB of JSON, gzip to a few hundred
    // bytes, and each level buffers the levels below again when decoded.
    let body = nested_json(30, 20_000);
    assert!(gzip(&body).len() < 2_000);
    let response = receiver.post_traces(JSON, true, body).await;
    assert_eq!(response.status(), 413);
    // The normalising fallback (here for a null member) is bounded too.
    let with_null = String::from_utf8(nested_json(30, 20_000))
        .unwrap()
        .replace(r#""name":"x""#, r#""name":"x","parentSpanId":null"#);
    let response = receiver
        .post_traces(JSON, true, with_null.into_bytes())
        .await;
    assert_eq!(response.status(), 413);
    // A small nested value is fine.
    let response = receiver.post_traces(JSON, false, nested_json(3, 3)).await;
    assert_eq!(response.status(), 200);
    assert_serves(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_messages_with_many_elements_get_resource_exhausted() {
    let receiver = TestReceiver::start(small_limits).await;
    for attributes in [100_000, 400_000] {
        let status = grpc_client(&receiver)
            .await
            .export(empty_attributes(attributes))
            .await
            .expect_err("over the decode limits");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
        assert!(status.get_error_details().retry_info().is_none());
    }
    assert_serves(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn a_huge_content_length_is_refused_before_the_body() {
    let receiver = TestReceiver::start(|_| {}).await;
    let mut stream = TcpStream::connect(receiver.http_addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {}\r\ncontent-type: {PROTOBUF}\r\n\
         content-length: 100000000000\r\n\r\n",
        receiver.http_addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
        .await
        .expect("an answer without the body")
        .unwrap();
    let response = String::from_utf8_lossy(&response[..read]);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    drop(stream);
    assert_serves(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn requests_beyond_the_memory_in_flight_are_shed_until_it_is_returned() {
    let receiver = TestReceiver::start(|config| {
        config.server.max_http_body_mib = 1;
        config.server.max_grpc_message_mib = 1;
        config.server.max_decoded_request_mib = 1;
        // The least validation allows: one request of each limit beside its bodies.
        config.server.max_decoded_in_flight_mib = 3;
    })
    .await;
    // Slow clients declare 900 KB each and send none of it: the bodies' memory is held for
    // them, 2.7 MB of the 3 MiB.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(receiver.http_addr).await.unwrap();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: {}\r\ncontent-type: {PROTOBUF}\r\n\
             content-length: 900000\r\n\r\n",
            receiver.http_addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }

    // 400 KB more does not fit beside it, over either transport.
    let body = padded(400_000).encode_to_vec();
    let shed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = receiver.post_traces(PROTOBUF, false, body.clone()).await;
            if response.status() == 503 {
                return response;
            }
            assert_eq!(response.status(), 200);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("shed while the slow body holds the budget");
    assert_eq!(shed.headers()["retry-after"], "1");
    let status = grpc_client(&receiver)
        .await
        .export(padded(400_000))
        .await
        .expect_err("shed");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    let retry = status.get_error_details();
    assert_eq!(
        retry.retry_info().and_then(|retry| retry.retry_delay),
        Some(Duration::from_secs(1))
    );

    // The slow clients go away, their share is returned, and the same request fits.
    drop(slow);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = receiver.post_traces(PROTOBUF, false, body.clone()).await;
            if response.status() == 200 {
                return;
            }
            assert_eq!(response.status(), 503);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("served once the budget is returned");
    grpc_client(&receiver)
        .await
        .export(padded(400_000))
        .await
        .expect("a gRPC request once the budget is returned");
    receiver.stop().await.unwrap();
}

/// Export is unary, but HTTP/2 lets a client keep sending messages on the call; tonic reads
/// and discards them before answering. The call is refused once it has sent more than one
/// message may hold, so it cannot keep charging the budget in flight until its deadline.
#[tokio::test]
async fn a_grpc_call_that_keeps_sending_messages_is_refused() {
    let receiver = TestReceiver::start(|config| {
        config.server.max_grpc_message_mib = 1;
    })
    .await;
    let channel = tonic::transport::Channel::from_shared(receiver.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    // Each message is under the limit; three of them are not.
    let message = padded(700 * 1024);
    assert!(message.encoded_len() < 1024 * 1024);
    let messages = futures_util::stream::iter(vec![message.clone(), message.clone(), message]);
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let codec = tonic_prost::ProstCodec::<
        ExportTraceServiceRequest,
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
    >::default();
    let status = client
        .client_streaming(tonic::Request::new(messages), path, codec)
        .await
        .expect_err("more than one message's worth of data");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    assert_serves(&receiver).await;
    receiver.stop().await.unwrap();
}
