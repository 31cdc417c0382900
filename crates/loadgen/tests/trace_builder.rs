//! The generated requests have the documented span shapes and feedback ratios.

use std::collections::HashMap;

use closedloop_loadgen::traces::{Body, TraceBuilder, TraceConfig, SPANS_PER_TRACE};
use closedloop_semconv::attribute::{self as attr, FeedbackSignal, LinkType};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

fn string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match value(attributes, key)? {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn strings(attributes: &[KeyValue], key: &str) -> Vec<String> {
    match value(attributes, key) {
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .filter_map(|AnyValue { value }| match value {
                Some(Value::StringValue(text)) => Some(text.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn spans(body: &Body) -> Vec<Span> {
    ExportTraceServiceRequest::decode(&body.bytes[..])
        .expect("decodes")
        .resource_spans
        .into_iter()
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .collect()
}

#[test]
fn traces_have_the_expected_shapes_and_feedback_ratio() {
    let config = TraceConfig {
        seed: 1234,
        ..TraceConfig::default()
    };
    let bodies = TraceBuilder::new(config.clone()).bodies(200);
    let mut generations: HashMap<(Vec<u8>, Vec<u8>), usize> = HashMap::new();
    let mut feedback: Vec<Span> = Vec::new();
    let (mut responses, mut negative) = (0usize, 0usize);
    for body in &bodies {
        let spans = spans(body);
        assert_eq!(spans.len(), body.spans);
        assert!(body.spans <= config.batch_spans + body.feedback);
        let (own_feedback, traces): (Vec<Span>, Vec<Span>) = spans
            .into_iter()
            .partition(|span| string(&span.attributes, attr::CLOSEDLOOP_FEEDBACK_SIGNAL).is_some());
        assert_eq!(own_feedback.len(), body.feedback);
        assert_eq!(traces.len() % SPANS_PER_TRACE, 0);
        for trace in traces.chunks(SPANS_PER_TRACE) {
            let [root, retrieval, rerank, generation] = trace else {
                unreachable!("chunks of four")
            };
            for span in trace {
                assert_eq!(span.trace_id, root.trace_id, "one trace");
                assert_eq!(span.trace_id.len(), 16);
                assert_eq!(span.span_id.len(), 8);
            }
            assert!(root.parent_span_id.is_empty());
            assert!(root.name.starts_with("POST "));
            for child in [retrieval, rerank, generation] {
                assert_eq!(child.parent_span_id, root.span_id);
            }
            assert_eq!(
                string(&retrieval.attributes, attr::GEN_AI_OPERATION_NAME),
                Some("retrieval")
            );
            let retrieved = strings(&retrieval.attributes, attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS);
            assert!((5..=20).contains(&retrieved.len()), "{}", retrieved.len());
            assert_eq!(
                string(&rerank.attributes, attr::CLOSEDLOOP_RETRIEVAL_STAGE),
                Some("rerank")
            );
            let kept = strings(&rerank.attributes, attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS);
            assert!(!kept.is_empty() && retrieved.starts_with(&kept));
            assert_eq!(
                string(&generation.attributes, attr::GEN_AI_OPERATION_NAME),
                Some("chat")
            );
            for key in [
                attr::GEN_AI_PROVIDER_NAME,
                attr::GEN_AI_REQUEST_MODEL,
                attr::GEN_AI_RESPONSE_ID,
                attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID,
                attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
                attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH,
                attr::GEN_AI_DATA_SOURCE_ID,
                attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
            ] {
                assert!(string(&generation.attributes, key).is_some(), "{key}");
            }
            assert_eq!(
                strings(&generation.attributes, attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
                kept
            );
            generations.insert((generation.trace_id.clone(), generation.span_id.clone()), 0);
            responses += 1;
        }
        negative += body.negative;
        feedback.extend(own_feedback);
    }
    assert_eq!(
        responses,
        bodies.iter().map(|body| body.responses).sum::<usize>()
    );
    // Every feedback span follows the rule: same trace, exactly one link, to a generation span.
    for span in &feedback {
        assert_eq!(span.links.len(), 1);
        let link = &span.links[0];
        assert_eq!(
            link.trace_id, span.trace_id,
            "feedback lives in the judged trace"
        );
        assert_eq!(
            string(&link.attributes, attr::CLOSEDLOOP_LINK_TYPE),
            Some(LinkType::JudgedResponse.as_str())
        );
        let judged = generations
            .get_mut(&(link.trace_id.clone(), link.span_id.clone()))
            .expect("the link names a generated response");
        *judged += 1;
        let signal = string(&span.attributes, attr::CLOSEDLOOP_FEEDBACK_SIGNAL).unwrap();
        assert_eq!(
            signal == FeedbackSignal::ThumbsDown.as_str(),
            span.name == "feedback thumbs_down"
        );
    }
    assert!(
        generations.values().all(|&count| count <= 1),
        "one feedback per response at most"
    );
    let counted_negative = feedback
        .iter()
        .filter(|span| {
            string(&span.attributes, attr::CLOSEDLOOP_FEEDBACK_SIGNAL)
                == Some(FeedbackSignal::ThumbsDown.as_str())
        })
        .count();
    assert_eq!(counted_negative, negative);
    let feedback_ratio = feedback.len() as f64 / responses as f64;
    let negative_ratio = negative as f64 / responses as f64;
    assert!(responses > 4_000, "{responses}");
    assert!(
        (feedback_ratio - 0.20).abs() < 0.02,
        "feedback ratio {feedback_ratio}"
    );
    assert!(
        (negative_ratio - 0.05).abs() < 0.01,
        "negative ratio {negative_ratio}"
    );
}

#[test]
fn equal_seeds_give_equal_bytes() {
    let build = |seed| {
        TraceBuilder::new(TraceConfig {
            seed,
            ..TraceConfig::default()
        })
        .bodies(3)
        .into_iter()
        .map(|body| body.bytes)
        .collect::<Vec<_>>()
    };
    assert_eq!(build(9), build(9));
    assert_ne!(build(9), build(10));
}

/// Replays as `load::run` sends them: body `index % pool`, salted with `salt + index / pool`.
/// No two requests share a span id (some peers index span ids alone) nor a (trace id, span id)
/// pair, every parent is a span of the same request, and every feedback link names a span
/// sent in the same pass.
#[test]
fn replays_carry_fresh_ids_and_links_still_point_at_their_spans() {
    let bodies = TraceBuilder::new(TraceConfig {
        seed: 77,
        batch_spans: 40,
        feedback_ratio: 0.5,
        negative_ratio: 0.2,
    })
    .bodies(4);
    let salt = 0x5eed_1234_0000_0001_u64;
    let mut seen: HashMap<(Vec<u8>, Vec<u8>), u64> = HashMap::new();
    let mut span_ids: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut links_checked = 0;
    for index in 0..(bodies.len() as u64 * 3) {
        let pass = index / bodies.len() as u64;
        let body = &bodies[(index % bodies.len() as u64) as usize];
        let spans: Vec<Span> = ExportTraceServiceRequest::decode(&body.salted(salt + pass)[..])
            .expect("salted bodies decode")
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .collect();
        assert_eq!(spans.len(), body.spans);
        let mut parents = 0;
        for span in &spans {
            let ids = (span.trace_id.clone(), span.span_id.clone());
            if let Some(earlier) = seen.insert(ids, index) {
                panic!("request {index} repeats a span of request {earlier}");
            }
            if let Some(earlier) = span_ids.insert(span.span_id.clone(), index) {
                panic!("request {index} repeats a span id of request {earlier}");
            }
            assert_ne!(span.span_id, [0; 8]);
        }
        for span in &spans {
            if !span.parent_span_id.is_empty() {
                parents += 1;
                assert!(
                    spans.iter().any(|parent| parent.trace_id == span.trace_id
                        && parent.span_id == span.parent_span_id),
                    "a parent id names a span of the same request"
                );
            }
            for link in &span.links {
                let sent_in = seen
                    .get(&(link.trace_id.clone(), link.span_id.clone()))
                    .expect("a link names a span that was sent");
                assert_eq!(
                    sent_in / bodies.len() as u64,
                    pass,
                    "a link names the span as salted in the same pass"
                );
                links_checked += 1;
            }
        }
        assert_eq!(
            body.span_id_occurrences(),
            body.spans + parents + body.feedback,
            "one span id per span, per parent and per feedback link"
        );
    }
    assert!(
        links_checked > 0,
        "the replayed bodies carried feedback links"
    );
}
