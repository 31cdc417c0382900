//! A monitor end to end: a failure rate that leaves its baseline fires one alert, which
//! reaches the webhook once, is exported as an alert span with its owner and due time, and
//! resolves itself when the rate returns.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use closedloop_commands::triage::{NotifyConfig, TriageConfig, TriageRule};
use closedloop_engine::monitors::{MonitorGroup, MonitorSpec, MonitoringConfig};
use closedloop_engine::vocab::{
    AlertKind, FailureCategory, FailureSeverity, FailureStage, TriageStatus,
};
use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use closedloop_store::records::{FailureRow, Response, SpanRef, Template};
use support::*;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `count` responses of `answer@7` received at `at_s`, `failed` of them with a record.
fn responses(conn: &mut closedloop_store::Connection, at_s: i64, count: usize, failed: usize) {
    let mut tx = conn.transaction().unwrap();
    for n in 0..count {
        let (trace_id, span_id) = ids();
        let key = SpanRef { trace_id, span_id };
        let response = Response {
            template: Template {
                id: Some("answer".into()),
                version: Some("7".into()),
                ..Template::default()
            },
            ..Response::default()
        };
        tx.insert_response(&response, key, at_s, false).unwrap();
        if n < failed {
            tx.upsert_failure(&FailureRow {
                key,
                now_s: at_s,
                category: FailureCategory::WrongAnswer,
                stage: FailureStage::Generation,
                severity: FailureSeverity::Medium,
                signals: "thumbs_down",
                feedback_count: 1,
                revision: 1,
                enriched: true,
                triage_status: TriageStatus::Open,
            })
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A webhook that keeps the bodies it gets.
async fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, bodies)
}

fn posts(bodies: &Mutex<Vec<serde_json::Value>>, word: &str) -> usize {
    bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|body| {
            body["text"]
                .as_str()
                .is_some_and(|text| text.contains(word))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fired_monitor_reaches_the_webhook_once_is_exported_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::http().await;
    let (url, bodies) = webhook().await;
    // One-second ticks so that the test runs in seconds; everything else as in production.
    let mut pipeline_config = config(dir.path(), Some(sink.endpoint()));
    pipeline_config.monitoring = MonitoringConfig {
        tick_secs: 1,
        settle_secs: 1,
        baseline_days: 1,
        guard_hours: 0,
        in_control_days: 30.0,
        ..MonitoringConfig::default()
    };
    pipeline_config.monitors = vec![MonitorSpec {
        kind: AlertKind::FailureRate,
        by: Some(MonitorGroup::TemplateVersion),
        signal: None,
        relative_change: None,
        in_control_days: None,
    }];
    pipeline_config.triage = TriageConfig {
        rules: vec![TriageRule {
            monitor: Some("failure_rate".into()),
            template_id: Some("answer".into()),
            owner: "answer-quality".into(),
            sla_secs: Some(7_200),
            ..TriageRule::default()
        }],
        check_interval_secs: 1,
        ..TriageConfig::default()
    };
    pipeline_config.notify = NotifyConfig {
        webhook_url: Some(url.into()),
        on_new_failure: false,
        initial_backoff_millis: 100,
        max_backoff_secs: 1,
        ..NotifyConfig::default()
    };
    let store = dir.path().join("closedloop.db");
    // Ten minutes of history at 10%: the baseline.
    {
        let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
        pipeline.shutdown().await.unwrap();
        let mut conn = command_store(&store);
        let start = now_s() - 600;
        for at_s in start..start + 595 {
            responses(&mut conn, at_s, 50, 5);
        }
    }
    let pipeline = Pipeline::start(pipeline_config).await.unwrap();
    let mut conn = command_store(&store);

    // Half the answers fail now.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while posts(&bodies, "rose from") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert: {:?}",
            bodies.lock().unwrap()
        );
        responses(&mut conn, now_s(), 50, 25);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The excursion goes on: no second post.
    for _ in 0..4 {
        responses(&mut conn, now_s(), 50, 25);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        posts(&bodies, "rose from"),
        1,
        "{:?}",
        bodies.lock().unwrap()
    );
    let fired = bodies.lock().unwrap()[0].to_string();
    assert!(fired.contains("answer-quality"), "{fired}");
    assert!(fired.contains("template version `answer@7`"), "{fired}");

    // The rate returns (no failures at all, to be quick about it).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while posts(&bodies, "back at its baseline") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not resolved: {:?}",
            bodies.lock().unwrap()
        );
        responses(&mut conn, now_s(), 50, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(posts(&bodies, "rose from"), 1);
    assert_eq!(posts(&bodies, "back at its baseline"), 1);

    // Both spans of the alert reached the OTLP sink, with the owner and the due time.
    let mut alerts = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alerts.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "alert spans: {alerts:?}"
        );
        alerts = sink
            .spans()
            .into_iter()
            .filter(|exported| exported.span.name.starts_with("alert "))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(alerts.len(), 2);
    let (firing, resolved) = (&alerts[0], &alerts[1]);
    assert_eq!(
        firing.span.name,
        "alert failure_rate/template_version/answer@7"
    );
    assert_eq!(firing.str(attr::CLOSEDLOOP_ALERT_STATUS), Some("firing"));
    assert_eq!(
        resolved.str(attr::CLOSEDLOOP_ALERT_STATUS),
        Some("resolved")
    );
    assert_eq!(
        firing.str(attr::CLOSEDLOOP_TRIAGE_OWNER),
        Some("answer-quality")
    );
    assert!(firing.str(attr::CLOSEDLOOP_TRIAGE_DUE_TIME).is_some());
    assert_eq!(resolved.span.parent_span_id, firing.span.span_id);
    assert_eq!(resolved.span.trace_id, firing.span.trace_id);
    let stored = conn.alerts(0).unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].resolved_s.is_some());
    assert_eq!(stored[0].due_s, Some(stored[0].fired_s + 7_200));

    drop(conn);
    pipeline.shutdown().await.unwrap();
    sink.stop().await;

    // The report lists it.
    let json_path = dir.path().join("report.json");
    closedloop(&[
        "report",
        "--store-path",
        store.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ])
    .await
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let listed = report["alerts"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["monitor"],
        "failure_rate/template_version/answer@7"
    );
    assert_eq!(listed[0]["owner"], "answer-quality");
    assert!(listed[0]["resolved"].is_string());
}
