//! The Langfuse sink against a local server that checks every request against Langfuse's
//! documented score API (`POST /api/public/scores`, `CreateScoreRequest`), keeps scores by
//! id as Langfuse does, and fails the first request to make the exporter retry.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use closedloop_receiver::{LangfuseConfig, Pipeline};
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(15);
const PUBLIC_KEY: &str = "pk-lf-test";
const SECRET_KEY: &str = "sk-lf-test";

/// The fields of Langfuse's `CreateScoreRequest`; any other is an error.
const SCORE_FIELDS: &[&str] = &[
    "id",
    "traceId",
    "sessionId",
    "observationId",
    "datasetRunId",
    "name",
    "value",
    "comment",
    "metadata",
    "environment",
    "queueId",
    "dataType",
    "configId",
];

#[derive(Default)]
struct Langfuse {
    /// Scores by id, as Langfuse upserts them.
    scores: Mutex<BTreeMap<String, Value>>,
    /// Every request that reached the handler, valid or not.
    requests: Mutex<usize>,
    /// Requests answered 503 before the next one is taken.
    fail_next: Mutex<usize>,
    /// What was wrong with the requests that broke the API's rules.
    violations: Mutex<Vec<String>>,
}

/// What Langfuse's API reference says of a score body; `Err` names the broken rule.
fn check_score(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PUBLIC_KEY}:{SECRET_KEY}"))
    );
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return Err(format!(
            "authorization {auth:?} is not basic auth with the keys"
        ));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("content-type {content_type:?}"));
    }
    let score: Value = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let object = score.as_object().ok_or("the body is not an object")?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !SCORE_FIELDS.contains(&key.as_str()))
    {
        return Err(format!("unknown field {unknown}"));
    }
    for required in ["name", "value"] {
        if !object.contains_key(required) {
            return Err(format!("no {required}"));
        }
    }
    for text in ["id", "traceId", "observationId", "name", "comment"] {
        if object.get(text).is_some_and(|value| !value.is_string()) {
            return Err(format!("{text} is not a string"));
        }
    }
    let value = &object["value"];
    match object.get("dataType").and_then(Value::as_str) {
        Some("NUMERIC") | None if value.is_number() => {}
        Some("CATEGORICAL") if value.is_string() => {}
        Some("BOOLEAN") if value.as_f64().is_some_and(|v| v == 0.0 || v == 1.0) => {}
        other => return Err(format!("value {value} does not fit dataType {other:?}")),
    }
    if object
        .get("metadata")
        .is_some_and(|value| !value.is_object())
    {
        return Err("metadata is not an object".into());
    }
    Ok(score)
}

async fn scores(
    axum::extract::State(langfuse): axum::extract::State<Arc<Langfuse>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    *langfuse.requests.lock().unwrap() += 1;
    {
        let mut fail = langfuse.fail_next.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "{}".into());
        }
    }
    match check_score(&headers, &body) {
        Ok(score) => {
            let id = score["id"].as_str().unwrap_or_default().to_owned();
            langfuse.scores.lock().unwrap().insert(id.clone(), score);
            (StatusCode::OK, serde_json::json!({ "id": id }).to_string())
        }
        Err(violation) => {
            langfuse.violations.lock().unwrap().push(violation.clone());
            (StatusCode::BAD_REQUEST, violation)
        }
    }
}

async fn serve(langfuse: Arc<Langfuse>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/api/public/scores", axum::routing::post(scores))
        .with_state(langfuse);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn revisions_upsert_the_scores_of_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let langfuse = Arc::new(Langfuse::default());
    *langfuse.fail_next.lock().unwrap() = 1;
    let endpoint = serve(Arc::clone(&langfuse)).await;
    let mut config = config(dir.path(), None);
    // `target` is left to its default: the judged observation.
    let langfuse_config: LangfuseConfig = toml::from_str(&format!(
        "endpoint = \"{endpoint}\"\npublic_key = \"{PUBLIC_KEY}\"\n\
         secret_key = \"{SECRET_KEY}\"\ntimeout_millis = 2000"
    ))
    .unwrap();
    config.export.langfuse = Some(langfuse_config);
    let pipeline = Pipeline::start(config).await.unwrap();

    let response = ids();
    pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            feedback_span(child(response), Some(response), "thumbs_down", vec![]),
        ]))
        .await
        .unwrap();
    eventually(WAIT, || langfuse.scores.lock().unwrap().len() == 2).await;
    pipeline
        .ingest(request(vec![feedback_span(
            child(response),
            Some(response),
            "regenerate",
            vec![],
        )]))
        .await
        .unwrap();
    let failure_id = format!("fr_{}_{}", hex::encode(response.0), hex::encode(response.1));
    eventually(WAIT, || {
        langfuse
            .scores
            .lock()
            .unwrap()
            .get(&failure_id)
            .is_some_and(|score| {
                score["metadata"]["closedloop.failure.revision"] == serde_json::json!(2)
            })
    })
    .await;
    pipeline.shutdown().await.unwrap();

    assert_eq!(*langfuse.violations.lock().unwrap(), Vec::<String>::new());
    // 503 once, then two scores for each of the two revisions.
    assert_eq!(*langfuse.requests.lock().unwrap(), 5);
    let scores = langfuse.scores.lock().unwrap().clone();
    assert_eq!(
        scores.keys().cloned().collect::<Vec<_>>(),
        [failure_id.clone(), format!("{failure_id}_category")],
        "the second revision updated the record's two scores"
    );
    let severity = &scores[&failure_id];
    assert_eq!(severity["traceId"], hex::encode(response.0));
    assert_eq!(severity["observationId"], hex::encode(response.1));
    assert_eq!(severity["name"], "closedloop.failure");
    assert_eq!(severity["dataType"], "NUMERIC");
    assert_eq!(severity["value"], 0.5, "medium severity");
    let comment = severity["comment"].as_str().unwrap();
    assert!(
        comment.contains("2 feedback (thumbs_down, regenerate)"),
        "{comment}"
    );
    assert_eq!(
        severity["metadata"]["closedloop.prompt.template.version"],
        "v3"
    );
    let category = &scores[&format!("{failure_id}_category")];
    assert_eq!(category["name"], "closedloop.failure.category");
    assert_eq!(category["dataType"], "CATEGORICAL");
    assert_eq!(category["value"], "other");
}
