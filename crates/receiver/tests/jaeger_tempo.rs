//! Jaeger and Tempo, which cannot run here: the exported record spans replayed through the
//! OTLP-to-Jaeger mapping (docs/backends.md lists its rules), and the README's TraceQL
//! examples checked against the attributes the record really carries.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use closedloop_receiver::{ExportProtocol, Pipeline};
use closedloop_semconv::attribute::{self as attr, FailureCategory, FailureSeverity, FailureStage};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// A Jaeger span reference (`model.SpanRef`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reference {
    ChildOf(String),
    FollowsFrom(String),
}

/// A span as Jaeger stores it (`model.Span`), from an OTLP span by Jaeger's OTLP translator:
/// the parent becomes a CHILD_OF reference and each link a FOLLOWS_FROM reference whose
/// attributes are dropped; attributes become tags; the resource's `service.name` becomes the
/// process's service name; events become logs.
#[derive(Clone, Debug)]
struct JaegerSpan {
    span_id: String,
    operation: String,
    service: String,
    references: Vec<Reference>,
    tags: BTreeMap<String, String>,
    logs: Vec<BTreeMap<String, String>>,
}

fn tag_value(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        // Jaeger stores arrays as their JSON text.
        Some(Value::ArrayValue(array)) => serde_json::to_string(
            &array
                .values
                .iter()
                .map(|value| tag_value(value.value.as_ref()))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        _ => String::new(),
    }
}

fn tags(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                tag_value(kv.value.as_ref().and_then(|value| value.value.as_ref())),
            )
        })
        .collect()
}

fn to_jaeger(exported: &Exported) -> JaegerSpan {
    let span = &exported.span;
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(Reference::ChildOf(hex::encode(&span.parent_span_id)));
    }
    // Link attributes (`closedloop.link.type`) have no place in a Jaeger reference.
    references.extend(
        span.links
            .iter()
            .map(|link| Reference::FollowsFrom(hex::encode(&link.span_id))),
    );
    let mut span_tags = tags(&span.attributes);
    span_tags.insert("span.kind".into(), "internal".into());
    JaegerSpan {
        span_id: hex::encode(&span.span_id),
        operation: span.name.clone(),
        service: exported.service_name.clone().unwrap_or_default(),
        references,
        tags: span_tags,
        logs: span
            .events
            .iter()
            .map(|event| {
                let mut fields = tags(&event.attributes);
                fields.insert("event".into(), event.name.clone());
                fields
            })
            .collect(),
    }
}

/// The parent Jaeger's UI nests a span under: its first CHILD_OF reference, else its first
/// FOLLOWS_FROM reference.
fn ui_parent(span: &JaegerSpan) -> Option<&str> {
    span.references
        .iter()
        .find_map(|reference| match reference {
            Reference::ChildOf(id) => Some(id.as_str()),
            Reference::FollowsFrom(_) => None,
        })
        .or_else(|| {
            span.references.first().map(|reference| match reference {
                Reference::ChildOf(id) | Reference::FollowsFrom(id) => id.as_str(),
            })
        })
}

/// A record with two revisions, exported over OTLP to the test sink.
async fn record_with_two_revisions() -> (Ids, Vec<Ids>, Vec<Exported>) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::http().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let response = ids();
    let feedback = [child(response), child(response)];
    pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            feedback_span(feedback[0], Some(response), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    sink.wait_for(1, WAIT).await;
    pipeline
        .ingest(request(vec![feedback_span(
            feedback[1],
            Some(response),
            "regenerate",
            vec![],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(2, WAIT).await;
    pipeline.shutdown().await.unwrap();
    assert_eq!(ExportProtocol::HttpProtobuf, sink.endpoint().1);
    (response, feedback.to_vec(), spans)
}

#[tokio::test]
async fn jaeger_shows_one_record_with_its_revisions_and_every_field_as_a_tag() {
    let (response, feedback, spans) = record_with_two_revisions().await;
    let jaeger: Vec<JaegerSpan> = spans.iter().map(to_jaeger).collect();
    let response_id = hex::encode(response.1);
    let record = jaeger
        .iter()
        .find(|span| span.tags[attr::CLOSEDLOOP_FAILURE_REVISION] == "1")
        .unwrap();
    let revision = jaeger
        .iter()
        .find(|span| span.tags[attr::CLOSEDLOOP_FAILURE_REVISION] == "2")
        .unwrap();

    // The trace view: judged span > record > revision 2.
    assert_eq!(ui_parent(record), Some(response_id.as_str()));
    assert_eq!(ui_parent(revision), Some(record.span_id.as_str()));
    assert_eq!(record.service, "closedloop");
    assert_eq!(record.operation, "failure_record other");
    assert_eq!(revision.operation, "failure_record_revision other");
    // The links survive as FOLLOWS_FROM references, without their attributes.
    let follows: BTreeSet<Reference> = revision
        .references
        .iter()
        .filter(|reference| matches!(reference, Reference::FollowsFrom(_)))
        .cloned()
        .collect();
    let expected: BTreeSet<Reference> = std::iter::once(response)
        .chain(feedback.iter().copied())
        .map(|ids| Reference::FollowsFrom(hex::encode(ids.1)))
        .collect();
    assert_eq!(follows, expected);

    // What a Jaeger user needs is in the tags, since the link attributes are gone.
    let generation = Generation::default();
    let tags = &revision.tags;
    assert_eq!(tags[attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID], response_id);
    assert_eq!(tags[attr::CLOSEDLOOP_FAILURE_CATEGORY], "other");
    assert_eq!(tags[attr::CLOSEDLOOP_FAILURE_STAGE], "unknown");
    assert_eq!(tags[attr::CLOSEDLOOP_FAILURE_SEVERITY], "medium");
    assert_eq!(
        tags[attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION],
        generation.template_version
    );
    assert_eq!(
        tags[attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS],
        serde_json::to_string(&generation.chunk_ids.unwrap()).unwrap()
    );
    assert_eq!(
        tags[attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL],
        generation.model
    );
    assert!(
        !tags.keys().any(|key| key.starts_with("gen_ai.")),
        "no model-call keys on a record: {tags:?}"
    );
    // The evaluation event is a log.
    assert_eq!(revision.logs.len(), 1);
    assert_eq!(revision.logs[0]["event"], "gen_ai.evaluation.result");
    assert_eq!(
        revision.logs[0][attr::GEN_AI_EVALUATION_SCORE_LABEL],
        "other"
    );
}

/// One `scope.key op "value"` condition of a TraceQL spanset filter.
#[derive(Debug)]
struct Condition {
    scope: String,
    key: String,
    op: String,
    value: String,
}

/// The conditions of the README's TraceQL examples (the block after `**Tempo**`).
fn readme_traceql() -> Vec<Condition> {
    let readme = std::fs::read_to_string(python::repo_root().join("README.md")).unwrap();
    let block = readme
        .split("**Tempo** (TraceQL):")
        .nth(1)
        .and_then(|rest| rest.split("```text").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a TraceQL block after **Tempo** (TraceQL):");
    let mut conditions = Vec::new();
    for query in block.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let inner = query
            .strip_prefix('{')
            .and_then(|q| q.strip_suffix('}'))
            .unwrap_or_else(|| panic!("not a spanset filter: {query}"));
        for condition in inner.split("&&").map(str::trim) {
            let (target, rest) = condition.split_once(' ').unwrap();
            let (op, value) = rest.trim().split_once(' ').unwrap();
            let (scope, key) = target.split_once('.').unwrap();
            conditions.push(Condition {
                scope: scope.to_owned(),
                key: key.to_owned(),
                op: op.to_owned(),
                value: value.trim().trim_matches('"').to_owned(),
            });
        }
    }
    conditions
}

#[tokio::test]
async fn the_readme_traceql_names_attributes_the_record_carries() {
    let (_, _, spans) = record_with_two_revisions().await;
    let record = &spans[0];
    let conditions = readme_traceql();
    assert!(conditions.len() >= 6, "{conditions:?}");
    let feedback_keys = [
        attr::CLOSEDLOOP_FEEDBACK_SIGNAL,
        attr::CLOSEDLOOP_FEEDBACK_KIND,
        attr::CLOSEDLOOP_FEEDBACK_SOURCE,
    ];
    for condition in &conditions {
        match condition.scope.as_str() {
            "resource" => {
                assert_eq!(condition.key, "service.name", "{condition:?}");
                assert_eq!(
                    Some(condition.value.as_str()),
                    record.service_name.as_deref(),
                    "{condition:?}"
                );
            }
            // Feedback spans come from the application; the others must be on the record.
            "span" if feedback_keys.contains(&condition.key.as_str()) => {}
            "span" => assert!(
                record
                    .span
                    .attributes
                    .iter()
                    .any(|kv| kv.key == condition.key)
                    || [
                        attr::CLOSEDLOOP_TRIAGE_OWNER,
                        attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID
                    ]
                    .contains(&condition.key.as_str()),
                "the README queries span.{} but the record has no such attribute",
                condition.key
            ),
            other => panic!("unknown scope {other} in {condition:?}"),
        }
        // Each value is one the attribute can take.
        let values: Vec<&str> = match condition.op.as_str() {
            "=" => vec![condition.value.as_str()],
            "=~" => condition.value.split('|').collect(),
            other => panic!("operator {other} in {condition:?}"),
        };
        for value in values {
            let known = match condition.key.as_str() {
                attr::CLOSEDLOOP_FAILURE_CATEGORY => value.parse::<FailureCategory>().is_ok(),
                attr::CLOSEDLOOP_FAILURE_STAGE => value.parse::<FailureStage>().is_ok(),
                attr::CLOSEDLOOP_FAILURE_SEVERITY => value.parse::<FailureSeverity>().is_ok(),
                attr::OPENINFERENCE_SPAN_KIND => value == "EVALUATOR",
                _ => true,
            };
            assert!(known, "{value} is not a value of {}", condition.key);
        }
    }
    // The record's own id finds it and its revisions.
    assert!(conditions
        .iter()
        .any(|condition| condition.key == attr::CLOSEDLOOP_FAILURE_ID));
}
