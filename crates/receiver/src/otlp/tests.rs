use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;

use super::*;

/// A decode budget no test input comes near.
fn unlimited() -> Arc<DecodeBudget> {
    DecodeBudget::new(DecodeLimits {
        request_bytes: usize::MAX,
        request_elements: usize::MAX,
        in_flight_bytes: usize::MAX,
        in_flight_elements: usize::MAX,
        retry_after: Duration::from_secs(1),
    })
}

fn json(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    decode_json(body, &unlimited().reservation())
}

fn protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    decode_protobuf(body, &unlimited().reservation())
}

fn gunzip(body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, OtlpError> {
    gunzip_bounded(body, limit_bytes, &unlimited().reservation())
}

const TRACE_ID_HEX: &str = "4BF92F3577B34DA6A3CE929D0E0E4736";

fn json_request(span_extra: &str) -> String {
    format!(
        r#"{{
          "resourceSpans": [{{
            "resource": {{ "attributes": [] }},
            "scopeSpans": [{{
              "scope": {{ "name": "test" }},
              "spans": [{{
                "traceId": "{TRACE_ID_HEX}",
                "spanId": "00F067AA0BA902B7",
                "name": "chat gpt-4o",
                "kind": 3,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": 1700000001000000000,
                "somethingNew": {{ "ignored": true }}
                {span_extra}
              }}]
            }}]
          }}]
        }}"#
    )
}

#[test]
fn json_accepts_uppercase_ids_string_and_number_ints_and_unknown_fields() {
    let request = json(json_request("").as_bytes()).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        TRACE_ID_HEX.to_ascii_lowercase()
    );
    assert_eq!(span.span_id, hex::decode("00f067aa0ba902b7").unwrap());
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_001_000_000_000);
    assert_eq!(span_count(&request), 1);
}

#[test]
fn json_null_fields_mean_default() {
    let request = json(
        json_request(r#", "parentSpanId": null, "traceState": null, "status": null"#).as_bytes(),
    )
    .unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert!(span.parent_span_id.is_empty());
    assert!(span.status.is_none());
}

#[test]
fn json_non_finite_double_keeps_the_span() {
    let attributes = r#", "attributes": [
        { "key": "a", "value": { "doubleValue": "NaN" } },
        { "key": "b", "value": { "doubleValue": 0.5 } }
    ]"#;
    let request = json(json_request(attributes).as_bytes()).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.attributes.len(), 2);
    assert!(span.attributes[0]
        .value
        .as_ref()
        .is_none_or(|value| value.value.is_none()));
    assert_eq!(
        span.attributes[1].value.as_ref().unwrap().value,
        Some(AnyValueKind::DoubleValue(0.5))
    );
}

#[test]
fn json_errors_are_reported() {
    assert!(matches!(json(b"{"), Err(OtlpError::Json(_))));
    assert!(matches!(
        json(br#"{"resourceSpans": 5}"#),
        Err(OtlpError::Json(_))
    ));
    let bad_id = json_request("").replace(TRACE_ID_HEX, "zz");
    assert!(matches!(json(bad_id.as_bytes()), Err(OtlpError::Json(_))));
}

#[test]
fn json_full_success_is_an_empty_object() {
    let response = export_response(&IngestOutcome::default());
    assert!(response.partial_success.is_none());
    assert_eq!(export_response_json(&response), b"{}");

    let response = export_response(&IngestOutcome {
        rejected_spans: 2,
        error_message: "2 spans had invalid ids".into(),
    });
    let json: Value = serde_json::from_slice(&export_response_json(&response)).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedSpans"], "2");
    assert_eq!(
        json["partialSuccess"]["errorMessage"],
        "2 spans had invalid ids"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gunzip_round_trips_and_bounds_output() {
    let data = vec![7u8; 10_000];
    assert_eq!(gunzip(&gzip(&data), 10_000).unwrap(), data);
    assert!(matches!(
        gunzip(&gzip(&data), 9_999),
        Err(OtlpError::TooLarge { limit_bytes: 9_999 })
    ));
}

#[test]
fn gunzip_refuses_a_bomb_without_inflating_it() {
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    assert!(matches!(
        gunzip(&bomb, 1 << 20),
        Err(OtlpError::TooLarge { .. })
    ));
}

#[test]
fn gunzip_rejects_garbage() {
    assert!(matches!(gunzip(b"not gzip", 1024), Err(OtlpError::Gzip(_))));
}

#[test]
fn content_types() {
    assert_eq!(
        Encoding::from_content_type("application/x-protobuf"),
        Some(Encoding::Protobuf)
    );
    assert_eq!(
        Encoding::from_content_type("Application/JSON; charset=utf-8"),
        Some(Encoding::Json)
    );
    assert_eq!(Encoding::from_content_type("text/plain"), None);
    assert_eq!(Encoding::from_content_type(""), None);
}

#[test]
fn status_mapping() {
    use ::http::StatusCode;
    let too_large = OtlpError::TooLarge { limit_bytes: 1 };
    assert_eq!(too_large.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.grpc_code(), tonic::Code::ResourceExhausted);
    assert!(too_large.retry_after().is_none());

    let overloaded = OtlpError::Ingest(IngestError::Overloaded {
        retry_after: Duration::from_secs(3),
    });
    assert_eq!(overloaded.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(overloaded.grpc_code(), tonic::Code::Unavailable);
    assert_eq!(overloaded.retry_after(), Some(Duration::from_secs(3)));

    let malformed = protobuf(b"\xff\xff").unwrap_err();
    assert_eq!(malformed.http_status(), StatusCode::BAD_REQUEST);
    assert_eq!(malformed.grpc_code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_are_shed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::pipeline::PipelineConfig::default();
    config.store.path = dir.path().join("closedloop.db");
    config.export.use_env = false;
    let pipeline = Pipeline::start(config).await.unwrap();
    let ingest = Ingest::new(
        pipeline.clone(),
        1,
        DecodeLimits {
            retry_after: Duration::from_secs(2),
            ..unlimited().limits
        },
        ReceiverMetrics::disabled(),
    );

    let held = ingest.admit().unwrap();
    let error = ingest.admit().unwrap_err();
    assert!(matches!(error, OtlpError::Busy { .. }), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(error.grpc_code(), tonic::Code::Unavailable);

    drop(held);
    let _admission = ingest.admit().expect("admitted once a slot is free");
    ingest
        .export(ExportTraceServiceRequest::default(), ReceiverProtocol::Grpc)
        .await
        .expect("accepted");
    pipeline.shutdown().await.unwrap();
}
