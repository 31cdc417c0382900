//! The shipped OpenTelemetry Collector configs are structurally complete: every component a
//! pipeline names is defined, every connector is both an exporter and a receiver, every
//! routing table names real pipelines, and every closedloop or GenAI attribute key an OTTL
//! condition reads is one the semantic-convention registry defines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn collector_configs() -> Vec<PathBuf> {
    let dir = repo_root().join("collector-config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("collector-config/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

/// Every attribute id the registry defines.
fn registry_attribute_ids() -> BTreeSet<String> {
    let dir = repo_root().join("crates/semconv/model");
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("model/ is readable") {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("registry file is readable");
        let doc: Value = serde_norway::from_str(&text).expect("registry file is YAML");
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for attribute in group["attributes"].as_sequence().into_iter().flatten() {
                if let Some(id) = attribute["id"].as_str() {
                    ids.insert(id.to_owned());
                }
            }
        }
    }
    ids
}

fn keys(section: &Value) -> BTreeSet<String> {
    section
        .as_mapping()
        .map(|mapping| {
            mapping
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn names(list: &Value) -> Vec<String> {
    list.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect()
}

/// The component type of `type/name`.
fn component_type(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// Problems found in one config; empty when it is complete.
fn check_config(doc: &Value, registry: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let receivers = keys(&doc["receivers"]);
    let processors = keys(&doc["processors"]);
    let exporters = keys(&doc["exporters"]);
    let connectors = keys(&doc["connectors"]);
    let pipelines = keys(&doc["service"]["pipelines"]);
    if pipelines.is_empty() {
        problems.push("service.pipelines is empty".to_owned());
    }

    let pipeline_list =
        |pipeline: &str, kind: &str| names(&doc["service"]["pipelines"][pipeline][kind]);
    let mut connectors_as_exporter = BTreeSet::new();
    let mut connectors_as_receiver = BTreeSet::new();
    for pipeline in &pipelines {
        let pipeline_receivers = pipeline_list(pipeline, "receivers");
        let pipeline_exporters = pipeline_list(pipeline, "exporters");
        if pipeline_receivers.is_empty() {
            problems.push(format!("pipeline {pipeline} has no receivers"));
        }
        if pipeline_exporters.is_empty() {
            problems.push(format!("pipeline {pipeline} has no exporters"));
        }
        for receiver in pipeline_receivers {
            if connectors.contains(&receiver) {
                connectors_as_receiver.insert(receiver);
            } else if !receivers.contains(&receiver) {
                problems.push(format!(
                    "pipeline {pipeline} names undefined receiver {receiver}"
                ));
            }
        }
        for processor in pipeline_list(pipeline, "processors") {
            if !processors.contains(&processor) {
                problems.push(format!(
                    "pipeline {pipeline} names undefined processor {processor}"
                ));
            }
        }
        for exporter in pipeline_exporters {
            if connectors.contains(&exporter) {
                connectors_as_exporter.insert(exporter);
            } else if !exporters.contains(&exporter) {
                problems.push(format!(
                    "pipeline {pipeline} names undefined exporter {exporter}"
                ));
            }
        }
    }

    for connector in &connectors {
        if !connectors_as_exporter.contains(connector)
            || !connectors_as_receiver.contains(connector)
        {
            problems.push(format!(
                "connector {connector} must be an exporter of one pipeline and a receiver of another"
            ));
        }
        if component_type(connector) == "routing" {
            let routing = &doc["connectors"][connector.as_str()];
            let mut routed = names(&routing["default_pipelines"]);
            for route in routing["table"].as_sequence().into_iter().flatten() {
                routed.extend(names(&route["pipelines"]));
            }
            for target in routed {
                if !pipelines.contains(&target) {
                    problems.push(format!(
                        "routing connector {connector} names undefined pipeline {target}"
                    ));
                }
            }
        }
    }

    for (kind, defined) in [
        ("receivers", &receivers),
        ("processors", &processors),
        ("exporters", &exporters),
    ] {
        for component in defined {
            let used = pipelines
                .iter()
                .any(|pipeline| pipeline_list(pipeline, kind).contains(component));
            if !used {
                problems.push(format!(
                    "{component} is defined under {kind} but no pipeline uses it"
                ));
            }
        }
    }

    // Attribute keys read by OTTL conditions must be registry attributes.
    let text = serde_norway::to_string(doc).expect("a parsed document serialises");
    for key in text
        .split("attributes[\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        let ours = key.starts_with("closedloop.") || key.starts_with("gen_ai.");
        if ours && !registry.contains(key) {
            problems.push(format!(
                "OTTL reads {key}, which the registry does not define"
            ));
        }
    }
    problems
}

#[test]
fn every_collector_config_is_structurally_complete() {
    let registry = registry_attribute_ids();
    let files = collector_configs();
    assert!(
        files.len() >= 3,
        "expected the agent, gateway and tail-sampling configs, found {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("config is readable");
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()));
        let problems = check_config(&doc, &registry);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
}

#[test]
fn the_agent_routes_llm_and_feedback_spans_to_closedloop_and_the_backend() {
    let text = std::fs::read_to_string(repo_root().join("collector-config/agent.yaml"))
        .expect("agent.yaml is readable");
    let doc: Value = serde_norway::from_str(&text).expect("agent.yaml is YAML");
    let route = &doc["connectors"]["routing"]["table"][0];
    let condition = route["condition"].as_str().expect("a routing condition");
    for key in [
        closedloop_semconv::attribute::GEN_AI_OPERATION_NAME,
        closedloop_semconv::attribute::CLOSEDLOOP_FEEDBACK_SIGNAL,
        closedloop_semconv::attribute::CLOSEDLOOP_RETRIEVAL_STAGE,
    ] {
        assert!(
            condition.contains(key),
            "the closedloop route does not match on {key}"
        );
    }
    let targets = names(&route["pipelines"]);
    assert!(
        targets.iter().any(|p| p.contains("closedloop")),
        "route targets {targets:?}"
    );
    assert!(
        targets.iter().any(|p| p.contains("backend")),
        "matched spans must still reach the backend, route targets {targets:?}"
    );
}

#[test]
fn the_checker_reports_broken_references() {
    let broken: Value = serde_norway::from_str(
        r#"
receivers: { otlp: {} }
exporters: { otlp/backend: {} }
connectors:
  routing:
    default_pipelines: [traces/missing]
    table:
      - context: span
        condition: attributes["closedloop.no_such_key"] != nil
        pipelines: [traces]
service:
  pipelines:
    traces:
      receivers: [otlp, kafka]
      processors: [batch]
      exporters: [otlp/backend, routing]
"#,
    )
    .expect("test YAML parses");
    let problems = check_config(&broken, &registry_attribute_ids()).join("\n");
    for expected in [
        "undefined receiver kafka",
        "undefined processor batch",
        "connector routing must be",
        "undefined pipeline traces/missing",
        "closedloop.no_such_key",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}
