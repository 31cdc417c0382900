//! Triage: rules route a failure record to an owner with a due time (on the record and on the
//! exported span), status changes are exported revisions, and an SLA breach reaches the
//! webhook exactly once.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use closedloop_commands::triage::{self, ListFilter, NotifyConfig, TriageConfig, TriageRule};
use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn rfc3339_to_unix(text: &str) -> i64 {
    // `YYYY-MM-DDTHH:MM:SSZ`, checked against the current time only, so a rough conversion
    // through the standard library's day count is enough.
    let date = &text[..10];
    let (year, month, day): (i64, u32, u32) = (
        date[..4].parse().unwrap(),
        date[5..7].parse().unwrap(),
        date[8..10].parse().unwrap(),
    );
    let days = {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    };
    let time = &text[11..19];
    days * 86_400
        + time[..2].parse::<i64>().unwrap() * 3_600
        + time[3..5].parse::<i64>().unwrap() * 60
        + time[6..8].parse::<i64>().unwrap()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn triage_config() -> TriageConfig {
    TriageConfig {
        rules: vec![
            TriageRule {
                category: Some(attr::FailureCategory::Hallucination),
                owner: "generation-team".into(),
                sla_secs: Some(3_600),
                ..Default::default()
            },
            TriageRule {
                template_id: Some("answer_with_context".into()),
                owner: "prompt-team".into(),
                ..Default::default()
            },
        ],
        default_owner: Some("llm-oncall".into()),
        default_sla_secs: Some(86_400),
        ..Default::default()
    }
}

fn negative(response: Ids, category: Option<&str>) -> opentelemetry_proto::tonic::trace::v1::Span {
    feedback_span(
        child(response),
        Some(response),
        "thumbs_down",
        category
            .map(|category| vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, category)])
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_route_records_and_status_changes_are_exported_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::http().await;
    let mut pipeline_config = config(dir.path(), Some(sink.endpoint()));
    pipeline_config.triage = triage_config();
    let pipeline = Pipeline::start(pipeline_config).await.unwrap();
    let other_template = Generation {
        template_id: "summarise",
        ..Generation::default()
    };
    let (hallucination, templated, fallback) = (ids(), ids(), ids());
    let before = now_s();
    pipeline
        .ingest(request(vec![
            generation_span(hallucination, &Generation::default()),
            negative(hallucination, Some("hallucination")),
            generation_span(templated, &Generation::default()),
            negative(templated, Some("format")),
            generation_span(fallback, &other_template),
            negative(fallback, None),
        ]))
        .await
        .unwrap();
    let after = now_s();
    let spans = sink.wait_for(3, WAIT).await;
    let span_of = |response: Ids| {
        spans
            .iter()
            .find(|span| span.span.trace_id == response.0.to_vec())
            .unwrap_or_else(|| panic!("no record for {response:?}"))
    };
    // First rule: category hallucination, with its own SLA.
    let record = span_of(hallucination);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("generation-team")
    );
    assert_eq!(record.str(attr::CLOSEDLOOP_TRIAGE_STATUS), Some("open"));
    let due = rfc3339_to_unix(record.str(attr::CLOSEDLOOP_TRIAGE_DUE_TIME).unwrap());
    assert!((before + 3_600..=after + 3_600).contains(&due), "{due}");
    // Second rule: the template, no SLA of its own: the default SLA.
    let record = span_of(templated);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("prompt-team")
    );
    let due = rfc3339_to_unix(record.str(attr::CLOSEDLOOP_TRIAGE_DUE_TIME).unwrap());
    assert!((before + 86_400..=after + 86_400).contains(&due), "{due}");
    // No rule: the default owner.
    let record = span_of(fallback);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("llm-oncall")
    );

    // The same on the record in the store.
    let store = dir.path().join("closedloop.db");
    let records = triage::list(&mut command_store(&store), &ListFilter::new(now_s())).unwrap();
    assert_eq!(records.len(), 3);
    let id = format!(
        "fr_{}_{}",
        hex::encode(hallucination.0),
        hex::encode(hallucination.1)
    );
    let stored = records.iter().find(|record| record.id == id).unwrap();
    assert_eq!(stored.owner.as_deref(), Some("generation-team"));
    assert_eq!(stored.status, "open");
    assert_eq!(
        stored.due_time.as_deref(),
        span_of(hallucination).str(attr::CLOSEDLOOP_TRIAGE_DUE_TIME)
    );
    let mut filter = ListFilter::new(now_s());
    filter.owner = Some("prompt-team".into());
    assert_eq!(
        triage::list(&mut command_store(&store), &filter)
            .unwrap()
            .len(),
        1
    );

    // Status changes from the command line while the receiver runs: new revisions, exported.
    let (endpoint, _) = sink.endpoint();
    let store_arg = store.to_str().unwrap();
    closedloop(&[
        "triage",
        "--store-path",
        store_arg,
        "--export-endpoint",
        &endpoint,
        "ack",
        &id,
        "--note",
        "looking at the prompt",
    ])
    .await
    .unwrap();
    let spans = sink.wait_for(4, WAIT).await;
    let acked = spans
        .iter()
        .find(|span| span.int(attr::CLOSEDLOOP_FAILURE_REVISION) == Some(2))
        .expect("revision 2 exported");
    assert_eq!(acked.str(attr::CLOSEDLOOP_FAILURE_ID), Some(id.as_str()));
    assert_eq!(
        acked.str(attr::CLOSEDLOOP_TRIAGE_STATUS),
        Some("acknowledged")
    );
    assert_eq!(
        acked.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("generation-team")
    );
    assert_eq!(
        acked.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("hallucination")
    );
    assert_eq!(acked.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));

    closedloop(&[
        "triage",
        "--store-path",
        store_arg,
        "--export-endpoint",
        &endpoint,
        "resolve",
        &id,
        "--wont-fix",
        "--note",
        "expected behaviour",
    ])
    .await
    .unwrap();
    let spans = sink.wait_for(5, WAIT).await;
    let closed = spans
        .iter()
        .find(|span| span.int(attr::CLOSEDLOOP_FAILURE_REVISION) == Some(3))
        .expect("revision 3 exported");
    assert_eq!(closed.str(attr::CLOSEDLOOP_TRIAGE_STATUS), Some("wont_fix"));

    let stored = triage::list(&mut command_store(&store), &ListFilter::new(now_s()))
        .unwrap()
        .into_iter()
        .find(|record| record.id == id)
        .unwrap();
    assert_eq!(stored.status, "wont_fix");
    assert_eq!(stored.revision, 3);
    let notes: Vec<_> = stored
        .notes
        .iter()
        .map(|note| (note.status.as_str(), note.note.as_deref()))
        .collect();
    assert_eq!(
        notes,
        vec![
            ("acknowledged", Some("looking at the prompt")),
            ("wont_fix", Some("expected behaviour"))
        ]
    );
    // A later negative signal is a new revision that keeps the triage state.
    pipeline
        .ingest(request(vec![negative(hallucination, None)]))
        .await
        .unwrap();
    let spans = sink.wait_for(6, WAIT).await;
    let later = spans
        .iter()
        .find(|span| span.int(attr::CLOSEDLOOP_FAILURE_REVISION) == Some(4))
        .expect("revision 4 exported");
    assert_eq!(later.str(attr::CLOSEDLOOP_TRIAGE_STATUS), Some("wont_fix"));

    assert!(
        closedloop(&["triage", "--store-path", store_arg, "ack", "fr_nope"])
            .await
            .is_err()
    );
    pipeline.shutdown().await.unwrap();
    sink.stop().await;
}

/// The bodies the webhook accepted and the number of requests it got.
type HookState = (Arc<Mutex<Vec<serde_json::Value>>>, Arc<Mutex<usize>>);

/// A webhook on `127.0.0.1:0` that answers 500 to its first request and keeps the bodies of
/// the requests it accepted.
struct Webhook {
    url: String,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    requests: Arc<Mutex<usize>>,
}

async fn webhook() -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(0usize));
    let state = (Arc::clone(&accepted), Arc::clone(&requests));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State((accepted, requests)): axum::extract::State<HookState>,
                 body: axum::body::Bytes| async move {
                    let first = {
                        let mut count = requests.lock().unwrap();
                        *count += 1;
                        *count == 1
                    };
                    if first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    accepted
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    StatusCode::OK
                },
            ),
        )
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Webhook {
        url,
        accepted,
        requests,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sla_breach_reaches_the_webhook_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook().await;
    let mut pipeline_config = config(dir.path(), None);
    pipeline_config.triage = TriageConfig {
        default_owner: Some("llm-oncall".into()),
        default_sla_secs: Some(1),
        check_interval_secs: 1,
        ..Default::default()
    };
    pipeline_config.notify = NotifyConfig {
        webhook_url: Some(hook.url.clone().into()),
        initial_backoff_millis: 100,
        max_backoff_secs: 1,
        ..Default::default()
    };
    let pipeline = Pipeline::start(pipeline_config).await.unwrap();
    let (late, handled) = (ids(), ids());
    pipeline
        .ingest(request(vec![
            generation_span(late, &Generation::default()),
            negative(late, Some("wrong_answer")),
            generation_span(handled, &Generation::default()),
            negative(handled, Some("format")),
        ]))
        .await
        .unwrap();
    // One record is resolved before its due time: it never breaches.
    let store = dir.path().join("closedloop.db");
    let handled_id = format!("fr_{}_{}", hex::encode(handled.0), hex::encode(handled.1));
    closedloop(&[
        "triage",
        "--store-path",
        store.to_str().unwrap(),
        "resolve",
        &handled_id,
    ])
    .await
    .unwrap();
    let late_id = format!("fr_{}_{}", hex::encode(late.0), hex::encode(late.1));
    let breaches = |accepted: &[serde_json::Value]| -> Vec<serde_json::Value> {
        accepted
            .iter()
            .filter(|body| body["text"].as_str().unwrap().starts_with("SLA breach"))
            .cloned()
            .collect()
    };
    eventually(WAIT, || breaches(&hook.accepted.lock().unwrap()).len() == 1).await;
    // Several more checks run; none notifies the breach again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = hook.accepted.lock().unwrap().clone();
    let breach = breaches(&accepted);
    assert_eq!(breach.len(), 1, "{accepted:#?}");
    let text = breach[0]["text"].as_str().unwrap();
    assert!(text.contains(&late_id), "{text}");
    assert!(text.contains("llm-oncall"), "{text}");
    assert!(breach[0]["blocks"]
        .as_array()
        .is_some_and(|blocks| !blocks.is_empty()));
    // One new-record notification per record, the first delivered after a retry (the
    // webhook failed the first request).
    let new: Vec<_> = accepted
        .iter()
        .filter(|body| {
            body["text"]
                .as_str()
                .unwrap()
                .starts_with("New failure record")
        })
        .collect();
    assert_eq!(new.len(), 2, "{accepted:#?}");
    assert!(*hook.requests.lock().unwrap() > accepted.len());

    // The overdue record is on the overdue list; the resolved one is not.
    let mut filter = ListFilter::new(now_s());
    filter.overdue = true;
    let overdue = triage::list(&mut command_store(&store), &filter).unwrap();
    assert_eq!(
        overdue
            .iter()
            .map(|record| record.id.as_str())
            .collect::<Vec<_>>(),
        vec![late_id.as_str()]
    );
    pipeline.shutdown().await.unwrap();
}
