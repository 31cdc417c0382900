use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

use super::*;

/// The heap a decoded request holds: every `Vec`'s and `String`'s capacity.
fn heap(request: &ExportTraceServiceRequest) -> usize {
    fn vec<T>(items: &[T], capacity: usize) -> usize {
        let _ = items;
        capacity * size_of::<T>()
    }
    fn attributes(values: &Vec<KeyValue>) -> usize {
        vec(values, values.capacity()) + values.iter().map(key_value).sum::<usize>()
    }
    fn key_value(kv: &KeyValue) -> usize {
        kv.key.capacity() + kv.value.as_ref().map_or(0, any_value)
    }
    fn any_value(value: &AnyValue) -> usize {
        match &value.value {
            Some(Value::StringValue(text)) => text.capacity(),
            Some(Value::BytesValue(bytes)) => bytes.capacity(),
            Some(Value::ArrayValue(array)) => {
                vec(&array.values, array.values.capacity())
                    + array.values.iter().map(any_value).sum::<usize>()
            }
            Some(Value::KvlistValue(list)) => attributes(&list.values),
            _ => 0,
        }
    }
    let mut total = vec(&request.resource_spans, request.resource_spans.capacity());
    for resource in &request.resource_spans {
        total += resource.schema_url.capacity();
        total += resource
            .resource
            .as_ref()
            .map_or(0, |resource| attributes(&resource.attributes));
        total += vec(&resource.scope_spans, resource.scope_spans.capacity());
        for scope in &resource.scope_spans {
            total += scope.scope.as_ref().map_or(0, |scope| {
                scope.name.capacity() + scope.version.capacity() + attributes(&scope.attributes)
            });
            total += vec(&scope.spans, scope.spans.capacity());
            for span in &scope.spans {
                total += span.trace_id.capacity()
                    + span.span_id.capacity()
                    + span.parent_span_id.capacity()
                    + span.trace_state.capacity()
                    + span.name.capacity()
                    + attributes(&span.attributes)
                    + vec(&span.events, span.events.capacity())
                    + vec(&span.links, span.links.capacity())
                    + span
                        .status
                        .as_ref()
                        .map_or(0, |status| status.message.capacity());
                for event in &span.events {
                    total += event.name.capacity() + attributes(&event.attributes);
                }
                for link in &span.links {
                    total += link.trace_id.capacity()
                        + link.span_id.capacity()
                        + link.trace_state.capacity()
                        + attributes(&link.attributes);
                }
            }
        }
    }
    total
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        key_strindex: 0,
    }
}

/// A request like an instrumented LLM application sends: spans with a dozen attributes,
/// events, links, a status and a nested array value.
fn realistic(spans: usize) -> ExportTraceServiceRequest {
    let span = |i: usize| Span {
        trace_id: vec![0x4b; 16],
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        parent_span_id: vec![1; 8],
        name: format!("chat gpt-4o {i}"),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes: (0..12)
            .map(|a| {
                text(
                    &format!("gen_ai.attribute.{a}"),
                    "some value of a few words",
                )
            })
            .chain([KeyValue {
                key: "retrieval.documents".into(),
                value: Some(AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue {
                        values: (0..3)
                            .map(|d| AnyValue {
                                value: Some(Value::StringValue(format!("doc-{d}"))),
                            })
                            .collect(),
                    })),
                }),
                key_strindex: 0,
            }])
            .collect(),
        events: vec![Event {
            time_unix_nano: 1,
            name: "gen_ai.content.prompt".into(),
            attributes: vec![text("gen_ai.prompt", &"a question? ".repeat(20))],
            dropped_attributes_count: 0,
        }],
        links: vec![Link {
            trace_id: vec![2; 16],
            span_id: vec![3; 8],
            attributes: vec![text("link.kind", "feedback")],
            ..Default::default()
        }],
        status: Some(Status {
            message: "ok".into(),
            code: 1,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "chat-app")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "closedloop-tracing".into(),
                    ..Default::default()
                }),
                spans: (0..spans).map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// `count` empty attributes on one span: two bytes each on the wire.
fn empty_attributes(count: usize) -> ExportTraceServiceRequest {
    let mut request = realistic(1);
    request.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue::default(); count];
    request
}

/// An attribute value nested `depth` arrays deep.
fn nested(depth: usize) -> ExportTraceServiceRequest {
    let mut value = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut request = realistic(1);
    request.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
        key: "deep".into(),
        value: Some(value),
        key_strindex: 0,
    }];
    request
}

fn check_bound(request: &ExportTraceServiceRequest) -> (Estimate, usize) {
    let bytes = request.encode_to_vec();
    let estimate = scan_protobuf(&bytes).unwrap();
    let decoded = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
    let real = heap(&decoded);
    assert!(
        estimate.decoded_bytes >= real,
        "estimate {} under the real {real}",
        estimate.decoded_bytes
    );
    (estimate, real)
}

#[test]
fn estimate_bounds_a_realistic_request_closely() {
    for spans in [1, 10, 500] {
        let (estimate, real) = check_bound(&realistic(spans));
        // Not wildly above: normal traffic must fit the budget.
        assert!(
            estimate.decoded_bytes <= 4 * real,
            "{spans} spans: estimate {} vs real {real}",
            estimate.decoded_bytes
        );
        // Per span: itself, 13 attributes with their values, an array of 3 values, an event
        // and a link with an attribute each, the status; plus the resource spans, resource,
        // its attribute, scope spans and scope.
        assert_eq!(
            estimate.elements,
            spans * (1 + 13 * 2 + 1 + 3 + 3 + 3 + 1) + 6
        );
    }
}

#[test]
fn estimate_bounds_amplifying_requests() {
    let (estimate, _) = check_bound(&empty_attributes(100_000));
    let wire = empty_attributes(100_000).encoded_len();
    // Two bytes on the wire, a whole `KeyValue` (and more) decoded.
    assert!(
        estimate.decoded_bytes > 40 * wire,
        "{estimate:?} for {wire} bytes"
    );
    assert!(estimate.elements > 100_000);
    check_bound(&nested(40));
}

#[test]
fn nesting_past_the_decoder_limit_is_refused_like_the_decoder() {
    // The request, resource spans, scope spans, span, key value, then an any value and an
    // array value per level.
    let deep = nested(50).encode_to_vec();
    assert!(ExportTraceServiceRequest::decode(&deep[..]).is_err());
    assert_eq!(scan_protobuf(&deep), Err(ScanError::TooDeep));
    let fits = nested(46).encode_to_vec();
    assert!(ExportTraceServiceRequest::decode(&fits[..]).is_ok());
    assert!(scan_protobuf(&fits).is_ok());
}

#[test]
fn malformed_wire_data_is_refused() {
    let bytes = realistic(2).encode_to_vec();
    assert_eq!(
        scan_protobuf(&bytes[..bytes.len() - 1]),
        Err(ScanError::Truncated)
    );
    // Field 1 as a varint: every decoder refuses it.
    assert!(matches!(
        scan_protobuf(b"\x08\x01"),
        Err(ScanError::WireType { field: 1, .. })
    ));
    assert!(matches!(
        scan_protobuf(b"\x00"),
        Err(ScanError::InvalidKey(0))
    ));
    assert_eq!(
        scan_protobuf(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(ScanError::InvalidVarint)
    );
    // Unknown fields, groups included, are skipped like prost skips them.
    let unknown = [&b"\x78\x05\x7b\x08\x01\x7c"[..], &bytes].concat();
    assert!(ExportTraceServiceRequest::decode(&unknown[..]).is_ok());
    assert_eq!(scan_protobuf(&unknown), scan_protobuf(&bytes));
}

fn json_of(request: &ExportTraceServiceRequest) -> Vec<u8> {
    serde_json::to_vec(request).unwrap()
}

#[test]
fn json_estimate_bounds_the_decoded_request() {
    for request in [realistic(50), empty_attributes(10_000), nested(20)] {
        let body = json_of(&request);
        let estimate = scan_json(&body).unwrap();
        let decoded: ExportTraceServiceRequest = serde_json::from_slice(&body).unwrap();
        let real = heap(&decoded);
        assert!(estimate.decoded_bytes >= real, "{estimate:?} vs {real}");
        assert!(estimate.fallback_bytes > body.len());
    }
    let realistic = json_of(&realistic(50));
    let estimate = scan_json(&realistic).unwrap();
    // The same messages, and the request object, which protobuf does not delimit.
    assert_eq!(
        estimate.elements - 1,
        scan_protobuf(&self::realistic(50).encode_to_vec())
            .unwrap()
            .elements
    );
}

#[test]
fn json_nesting_is_charged_once_per_enclosing_value() {
    // serde's flatten buffers each AnyValue's subtree again, so cost grows with depth squared.
    let shallow = scan_json(&json_of(&nested(5))).unwrap().decoded_bytes;
    let deep = scan_json(&json_of(&nested(20))).unwrap().decoded_bytes;
    assert!(deep > 5 * shallow, "{shallow} vs {deep}");
}

#[test]
fn json_scan_tells_when_normalising_is_needed() {
    let with_null = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"parentSpanId":null}]}]}]}"#;
    assert!(scan_json(with_null).unwrap().needs_normalising);
    let nan = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"doubleValue":"NaN"}}]}}]}"#;
    assert!(scan_json(nan).unwrap().needs_normalising);
    let string = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"NaN"}}]}}]}"#;
    assert!(!scan_json(string).unwrap().needs_normalising);
    assert!(scan_json(b"{").is_err());
    assert!(scan_json(b"{} x").is_err());
}

/// The scan's share of decoding a realistic request. Prints, asserts nothing about time; run
/// with `cargo test --release -p closedloop-receiver --lib scan_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn scan_cost() {
    use std::time::Instant;
    let bytes = realistic(100).encode_to_vec();
    let json = json_of(&realistic(100));
    let rounds = 2_000;
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..rounds {
            f();
        }
        started.elapsed()
    };
    let decode = time(&|| {
        std::hint::black_box(ExportTraceServiceRequest::decode(&bytes[..]).unwrap());
    });
    let scan = time(&|| {
        std::hint::black_box(scan_protobuf(&bytes).unwrap());
    });
    let decode_json = time(&|| {
        std::hint::black_box(serde_json::from_slice::<ExportTraceServiceRequest>(&json).unwrap());
    });
    let scan_json_time = time(&|| {
        std::hint::black_box(scan_json(&json).unwrap());
    });
    println!(
        "protobuf {} bytes: decode {:?}, scan {:?} per request, scan+decode / decode = {:.3}",
        bytes.len(),
        decode / rounds,
        scan / rounds,
        (decode + scan).as_secs_f64() / decode.as_secs_f64()
    );
    println!(
        "json {} bytes: decode {:?}, scan {:?} per request, scan+decode / decode = {:.3}",
        json.len(),
        decode_json / rounds,
        scan_json_time / rounds,
        (decode_json + scan_json_time).as_secs_f64() / decode_json.as_secs_f64()
    );
}
