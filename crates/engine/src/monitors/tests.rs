use closedloop_semconv::attribute as attr;
use closedloop_store::records::{FailureRow, Response, Template};
use closedloop_store::testing::TestStore;
use closedloop_store::{Access, Connection};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::*;
use crate::triage::TriageRule;
use crate::vocab::{FailureCategory, FailureSeverity, FailureStage, TriageStatus};

const START_S: i64 = 1_767_571_200;
const HOUR: i64 = 3_600;

/// 40 responses of `answer@1` in each hour of `hours`, `failed` of them with a record.
fn fill(conn: &mut Connection, hours: std::ops::Range<i64>, failed: usize, next: &mut u64) {
    let mut tx = conn.transaction().unwrap();
    for hour in hours {
        for n in 0..40 {
            *next += 1;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&next.to_be_bytes());
            let key = SpanRef {
                trace_id,
                span_id: [1; 8],
            };
            let response = Response {
                template: Template {
                    id: Some("answer".into()),
                    version: Some("1".into()),
                    ..Template::default()
                },
                ..Response::default()
            };
            let at_s = START_S + hour * HOUR + n * 60;
            tx.insert_response(&response, key, at_s, false).unwrap();
            if (n as usize) < failed {
                tx.upsert_failure(&FailureRow {
                    key,
                    now_s: at_s,
                    category: FailureCategory::Hallucination,
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
    }
    tx.commit().unwrap();
}

fn string_attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(text) => Some(text.clone()),
            _ => None,
        })
}

fn monitors() -> Monitors {
    let triage = TriageConfig {
        rules: vec![TriageRule {
            monitor: Some("failure_rate".into()),
            template_id: Some("answer".into()),
            owner: "answers-team".into(),
            sla_secs: Some(4 * HOUR as u64),
            ..TriageRule::default()
        }],
        ..TriageConfig::default()
    };
    let notify = NotifyConfig {
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        ..NotifyConfig::default()
    };
    Monitors::new(&MonitoringConfig::default(), &[], &triage, &notify)
}

/// 30 days at 10% and a day at 30%: the start-up replay is quiet, then finds the excursion
/// going on with no alert and fires it once (stored, routed, exported, notified); a second
/// receiver on the same store does not fire it again; two days back at 10% resolve it.
#[test]
fn an_excursion_fires_once_and_resolves() {
    let store = TestStore::sqlite();
    let mut conn = store.open(Access::Writer);
    let mut next = 0;
    fill(&mut conn, 0..30 * 24, 4, &mut next);
    fill(&mut conn, 30 * 24..31 * 24, 12, &mut next);
    let now_s = START_S + 31 * 24 * HOUR + HOUR;

    let mut first = monitors();
    let outcome = first.check(&mut conn, now_s).unwrap();
    assert_eq!((outcome.fired, outcome.resolved), (1, 0), "{outcome:?}");
    let monitor = "failure_rate/template_version/answer@1";
    let alert = conn.open_alert(monitor).unwrap().expect("an open alert");
    assert_eq!(alert.owner.as_deref(), Some("answers-team"));
    assert_eq!(alert.due_s, Some(alert.fired_s + 4 * HOUR));
    assert!((alert.baseline_rate - 0.1).abs() < 1e-9, "{alert:?}");
    assert!(alert.statistic >= alert.threshold, "{alert:?}");
    assert_eq!(conn.alerts(0).unwrap().len(), 1);

    let rows = conn.read_outbox(0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    let span = Span::decode(rows[0].span.as_slice()).unwrap();
    assert_eq!(span.name, format!("alert {monitor}"));
    assert_eq!(
        string_attribute(&span, attr::CLOSEDLOOP_TRIAGE_OWNER).as_deref(),
        Some("answers-team")
    );
    assert!(string_attribute(&span, attr::CLOSEDLOOP_TRIAGE_DUE_TIME).is_some());
    assert_eq!(
        string_attribute(&span, attr::CLOSEDLOOP_ALERT_STATUS).as_deref(),
        Some("firing")
    );
    let notifications = conn.claim_notifications(now_s, now_s + 60, 10).unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].kind, KIND_ALERT_FIRED);
    assert!(notifications[0].payload.contains("answers-team"));
    // Delivered.
    conn.delete_notification(notifications[0].id).unwrap();

    // Another receiver starting on the same store finds the alert open.
    let outcome = monitors().check(&mut conn, now_s).unwrap();
    assert_eq!((outcome.fired, outcome.resolved), (0, 0));
    // The next check of the same receiver reads nothing new.
    assert_eq!(first.check(&mut conn, now_s).unwrap().ticks, 0);

    fill(&mut conn, 31 * 24..33 * 24, 4, &mut next);
    let later_s = START_S + 33 * 24 * HOUR + HOUR;
    let outcome = first.check(&mut conn, later_s).unwrap();
    assert_eq!(outcome.ticks, 48);
    assert_eq!((outcome.fired, outcome.resolved), (0, 1), "{outcome:?}");
    assert_eq!(conn.open_alert(monitor).unwrap(), None);
    let resolved = &conn.alerts(0).unwrap()[0];
    assert!(resolved.resolved_s.is_some());
    let rows = conn.read_outbox(0, 10).unwrap();
    assert_eq!(rows.len(), 2);
    let child = Span::decode(rows[1].span.as_slice()).unwrap();
    assert_eq!(child.trace_id, span.trace_id);
    assert_eq!(child.parent_span_id, span.span_id);
    assert_eq!(
        string_attribute(&child, attr::CLOSEDLOOP_ALERT_STATUS).as_deref(),
        Some("resolved")
    );
    let notifications = conn.claim_notifications(later_s, later_s + 60, 10).unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].kind, KIND_ALERT_RESOLVED);
}

/// Steady traffic raises nothing, and a quiet replay raises nothing either.
#[test]
fn steady_traffic_raises_nothing() {
    let store = TestStore::sqlite();
    let mut conn = store.open(Access::Writer);
    let mut next = 0;
    fill(&mut conn, 0..31 * 24, 4, &mut next);
    let mut monitors = monitors();
    let outcome = monitors
        .check(&mut conn, START_S + 31 * 24 * HOUR + HOUR)
        .unwrap();
    assert_eq!((outcome.fired, outcome.resolved), (0, 0));
    assert!(monitors
        .keys()
        .contains(&"failure_rate/template_version/answer@1".to_owned()));
    assert!(conn.alerts(0).unwrap().is_empty());
}

/// `per_hour` responses in each hour of `hours` asking `query(hour, n)`.
fn fill_queries(
    conn: &mut Connection,
    hours: std::ops::Range<i64>,
    per_hour: i64,
    query: impl Fn(i64, i64) -> String,
    next: &mut u64,
) {
    let mut tx = conn.transaction().unwrap();
    for hour in hours {
        for n in 0..per_hour {
            *next += 1;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&next.to_be_bytes());
            let response = Response {
                fingerprint: Some(closedloop_tracing::fingerprint(&query(hour, n)).to_string()),
                ..Response::default()
            };
            let key = SpanRef {
                trace_id,
                span_id: [2; 8],
            };
            tx.insert_response(&response, key, START_S + hour * HOUR + n, false)
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Thirty days of the same ten questions, then a day in which a tenth of the queries are
/// about something new: the drift alert fires and names the new cluster.
#[test]
fn new_queries_raise_a_drift_alert_with_their_cluster() {
    const USUAL: [&str; 10] = [
        "how do I reset my password",
        "where is my invoice",
        "cancel my subscription",
        "change the billing address",
        "add a user to my team",
        "export my data as csv",
        "enable two factor authentication",
        "which plans include sso",
        "delete my account",
        "update my payment card",
    ];
    let store = TestStore::sqlite();
    let mut conn = store.open(Access::Writer);
    let mut next = 0;
    let usual = |hour: i64, n: i64| USUAL[((hour + n) % 10) as usize].to_owned();
    fill_queries(&mut conn, 0..30 * 24, 20, usual, &mut next);
    fill_queries(
        &mut conn,
        30 * 24..31 * 24,
        20,
        |hour, n| {
            if n < 2 {
                // New words, in many combinations.
                const A: [&str; 8] = [
                    "warehouse",
                    "forklift",
                    "pallet",
                    "conveyor",
                    "scanner",
                    "barcode",
                    "dock",
                    "robot",
                ];
                const B: [&str; 8] = [
                    "calibrate",
                    "pair",
                    "firmware",
                    "reboot",
                    "jammed",
                    "offline",
                    "battery",
                    "sensor",
                ];
                const C: [&str; 8] = [
                    "zone", "aisle", "shift", "manifest", "shipment", "rack", "bay", "lane",
                ];
                let i = hour * 2 + n;
                format!(
                    "{} {} {}",
                    A[(i % 8) as usize],
                    B[(i / 8 % 8) as usize],
                    C[(i / 64 % 8) as usize]
                )
            } else {
                usual(hour, n)
            }
        },
        &mut next,
    );
    let mut monitors = monitors();
    monitors
        .check(&mut conn, START_S + 31 * 24 * HOUR + HOUR)
        .unwrap();
    let alert = conn
        .open_alert("query_drift/all/all")
        .unwrap()
        .expect("a drift alert");
    let detail: serde_json::Value = serde_json::from_str(alert.detail.as_deref().unwrap()).unwrap();
    let clusters = detail["clusters"].as_array().unwrap();
    assert!(!clusters.is_empty(), "{detail}");
    assert!(clusters[0]["queries"].as_u64().unwrap() >= 5, "{detail}");
    assert_eq!(clusters[0]["examples"].as_array().unwrap().len(), 3);
    let notifications = conn
        .claim_notifications(i64::MAX / 2, i64::MAX / 2 + 1, 10)
        .unwrap();
    assert!(
        notifications
            .iter()
            .any(|n| n.payload.contains("New query clusters")),
        "{notifications:?}"
    );
}

/// The reviewers' labels: thirty days with one bad label in ten, then a day with six in ten,
/// fire the label-rate monitor of the template version.
#[test]
fn a_rise_in_bad_labels_fires_the_label_monitor() {
    use closedloop_store::records::{ReviewLabel, ReviewLabelUpdate, ReviewStratum};
    let store = TestStore::sqlite();
    let mut conn = store.open(Access::Writer);
    let mut keys = Vec::new();
    let mut tx = conn.transaction().unwrap();
    for hour in 0..31 * 24i64 {
        for k in 0..3i64 {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&((hour * 3 + k) as u64 + 1).to_be_bytes());
            let key = SpanRef {
                trace_id,
                span_id: [3; 8],
            };
            let response = Response {
                template: Template {
                    id: Some("answer".into()),
                    version: Some("2".into()),
                    ..Template::default()
                },
                ..Response::default()
            };
            let at_s = START_S + hour * HOUR + k;
            tx.insert_response(&response, key, at_s, false).unwrap();
            tx.queue_review_item("day", key, ReviewStratum::Uniform, at_s)
                .unwrap();
            let i = hour * 3 + k;
            let bad = if hour < 30 * 24 {
                i % 10 == 0
            } else {
                i % 10 < 6
            };
            keys.push((key, bad, at_s + 60));
        }
    }
    tx.commit().unwrap();
    let ids: HashMap<SpanRef, i64> = conn
        .review_items(None, false)
        .unwrap()
        .into_iter()
        .map(|item| (item.key, item.id))
        .collect();
    let mut tx = conn.transaction().unwrap();
    for (key, bad, labelled_s) in keys {
        let update = ReviewLabelUpdate {
            label: if bad {
                ReviewLabel::Bad
            } else {
                ReviewLabel::Good
            },
            labelled_s,
            category: None,
            expected: None,
            note: None,
            feedback_id: "review",
            reviewer: None,
        };
        tx.set_review_label(ids[&key], &update).unwrap();
    }
    tx.commit().unwrap();
    let mut monitors = monitors();
    monitors
        .check(&mut conn, START_S + 31 * 24 * HOUR + HOUR)
        .unwrap();
    let alert = conn
        .open_alert("label_rate/template_version/answer@2")
        .unwrap()
        .expect("a label-rate alert");
    assert!((alert.baseline_rate - 0.1).abs() < 0.01, "{alert:?}");
    assert!(alert.observed_rate > 0.3, "{alert:?}");
    // The failure-rate monitor saw no failure records at all.
    assert_eq!(
        conn.open_alert("failure_rate/template_version/answer@2")
            .unwrap(),
        None
    );
}
