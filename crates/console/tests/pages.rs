//! The overview, report and eval set pages over a store filled the way the receiver fills it
//! (`closedloop_store::bulk`), on SQLite and PostgreSQL: what they show matches what the store
//! holds.

mod support;

use axum::http::{header, StatusCode};
use closedloop_commands::review::{self, Label, ReviewConfig, ReviewFilter};
use closedloop_console::UiConfig;
use closedloop_engine::direct::DirectSettings;
use closedloop_engine::timefmt::DAY_SECS;
use closedloop_engine::vocab::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
    TriageStatus,
};
use closedloop_store::bulk::{populate, Populated, Spec};
use closedloop_store::records::{FailureRow, Feedback, FeedbackState, Response, SpanRef, Template};
use closedloop_store::testing::TestStore;
use closedloop_store::{Connection, ContentRetention};
use support::{run, TestConsole};

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Each engine's store, filled with `responses` and `failures` over 7 days.
fn filled(test: &str, responses: u64, failures: u64) -> Vec<(TestStore, Populated)> {
    support::both_engines(test, |conn| {
        let mut spec = Spec::new(responses, failures, now_s());
        spec.days = 7;
        populate(conn, &spec).unwrap()
    })
}

/// A signed-in console over `store`.
async fn signed_in(store: &TestStore) -> TestConsole {
    let mut console = TestConsole::over(store.config(), UiConfig::default());
    console.sign_in("ana", "").await;
    console
}

#[test]
fn the_overview_counts_what_the_store_holds() {
    for (store, filled) in filled("the_overview_counts_what_the_store_holds", 3_000, 150) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/?days=7").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(
                page.body
                    .contains(&format!("id=\"responses\">{}<", filled.responses)),
                "{}",
                page.body
            );
            assert!(
                page.body
                    .contains(&format!("id=\"failures\">{} ", filled.failures)),
                "{}",
                page.body
            );
            // One rate point per version and day that had responses, at most 6 versions × 7 days.
            let points = page.body.matches("<circle").count();
            assert!((7..=42).contains(&points), "{points}");
            for version in filled.template_versions.iter().take(1) {
                assert!(page.body.contains(version.as_str()), "{version}");
            }
            // Another window is another computation, not the cached 7 days.
            let wider = console.get("/ui/?days=30").await;
            assert!(
                wider.body.contains("selected>last 30 days"),
                "{}",
                wider.body
            );
        });
    }
}

#[test]
fn the_report_compares_versions_with_intervals() {
    for (store, filled) in filled("the_report_compares_versions_with_intervals", 3_000, 300) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/report?days=30").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(
                page.body.contains(&format!(
                    "{} responses, {} with a failure record",
                    filled.responses, filled.failures
                )),
                "{}",
                page.body
            );
            assert_eq!(
                within(&page.body, "id=\"report-chart\"")
                    .matches("<circle")
                    .count(),
                filled.template_versions.len(),
                "one interval per version"
            );
            assert!(page.body.contains("Did the change help?"));
            assert!(page.body.contains(" → "), "a comparison: {}", page.body);
            let (old, new) = (&filled.template_versions[0], &filled.template_versions[1]);
            let chosen = console
                .get(&format!(
                    "/ui/report?old={}&new={}",
                    urlencode(old),
                    urlencode(new)
                ))
                .await;
            assert!(
                chosen.body.contains(&format!("{old} → {new}")),
                "{}",
                chosen.body
            );
            let bad = console.get("/ui/report?old=nonsense&new=x@1").await;
            assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        });
    }
}

#[test]
fn the_eval_set_lists_cases_and_downloads_them() {
    for (store, filled) in filled("the_eval_set_lists_cases_and_downloads_them", 1_000, 40) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/evalset?days=30").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(
                page.body
                    .contains(&format!("from {} failure records", filled.failures)),
                "{}",
                page.body
            );
            let jsonl = console.get("/ui/evalset.jsonl?days=30").await;
            assert_eq!(jsonl.status, StatusCode::OK);
            assert!(jsonl.headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .contains("attachment"));
            let lines: Vec<serde_json::Value> = jsonl
                .body
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            let records: u64 = lines
                .iter()
                .map(|case| case["metadata"]["count"].as_u64().unwrap())
                .sum();
            assert_eq!(records, filled.failures);
            let csv = console.get("/ui/evalset.csv?days=30").await;
            assert_eq!(
                csv.body.lines().count(),
                lines.len() + 1,
                "a header and a row per case"
            );
            let unlabelled = console.get("/ui/evalset?labels=nonsense").await;
            assert_eq!(unlabelled.status, StatusCode::BAD_REQUEST);
        });
    }
}

/// The responses of the calibration fixture that reviewers call bad.
const BAD: [u8; 11] = [0, 1, 2, 3, 4, 6, 10, 11, 14, 15, 16];

/// The hand-computed calibration fixture (as `closedloop report`'s own test has it): 20
/// `answer@v1` responses of model `gpt-4o<mini>` yesterday; a user's thumbs-down on 0-5, a detector's rephrase on 0
/// and 10-13, a user's copy (a positive signal) on 6-9; and, when `labelled`, the day's
/// uniform sample of all 20, labelled bad as in [`BAD`].
fn calibration_fixture(conn: &mut Connection, labelled: bool) {
    let day = now_s().div_euclid(DAY_SECS) - 1;
    for n in 0u8..20 {
        let span = SpanRef {
            trace_id: [n + 1; 16],
            span_id: [n + 1; 8],
        };
        let received_s = day * DAY_SECS + 3_600 + 60 * i64::from(n);
        let response = Response {
            template: Template {
                id: Some("answer".into()),
                version: Some("v1".into()),
                ..Template::default()
            },
            // Markup in a value, to see it escaped.
            model: Some("gpt-4o<mini>".into()),
            ..Response::default()
        };
        assert!(conn
            .insert_response(&response, span, received_s, true)
            .unwrap());
        let mut signals = Vec::new();
        if n <= 5 {
            signals.push((FeedbackSignal::ThumbsDown, FeedbackSource::User));
        }
        if n == 0 || (10..=13).contains(&n) {
            signals.push((FeedbackSignal::Rephrase, FeedbackSource::Detector));
        }
        if (6..=9).contains(&n) {
            signals.push((FeedbackSignal::Copy, FeedbackSource::User));
        }
        for (signal, source) in signals {
            let feedback = Feedback {
                feedback_id: format!("fb-{n}-{}", signal.as_str()),
                span: None,
                target: Some(span),
                response_id: None,
                signal,
                kind: if source == FeedbackSource::Detector {
                    FeedbackKind::Implicit
                } else {
                    FeedbackKind::Explicit
                },
                value: None,
                category: None,
                source,
                comment: None,
                session_id: None,
                user_id: None,
                time_unix_nano: (received_s as u64 + 30) * 1_000_000_000,
            };
            // Negative feedback is joined to its response; a copy is only stored, with its link.
            if signal == FeedbackSignal::Copy {
                conn.insert_feedback(&feedback, received_s + 30, FeedbackState::Stored)
                    .unwrap()
                    .unwrap();
            } else {
                let row = conn
                    .insert_feedback(&feedback, received_s + 30, FeedbackState::Joined)
                    .unwrap()
                    .unwrap();
                conn.set_feedback_target(row, span, FeedbackState::Joined)
                    .unwrap();
            }
        }
        // The engine makes a failure record of joined negative feedback.
        if n <= 5 || (10..=13).contains(&n) {
            conn.upsert_failure(&FailureRow {
                key: span,
                now_s: received_s + 30,
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
    if !labelled {
        return;
    }
    let config = ReviewConfig {
        daily_sample_size: 20,
        ..ReviewConfig::default()
    };
    let outcome =
        review::sample_day(conn, &config, ContentRetention::default(), day, Some(1)).unwrap();
    assert_eq!((outcome.population, outcome.sampled), (20, 20));
    for item in review::list(conn, &ReviewFilter::default()).unwrap() {
        let n = (0u8..20)
            .find(|n| item.trace_id == hex::encode([n + 1; 16]))
            .unwrap();
        review::label(
            conn,
            &DirectSettings::default(),
            item.id,
            &Label::new(!BAD.contains(&n)),
        )
        .unwrap();
    }
}

#[test]
fn the_report_shows_the_true_failure_rate_and_each_signals_precision_and_recall() {
    for (store, ()) in support::both_engines(
        "the_report_shows_the_true_failure_rate_and_each_signals_precision_and_recall",
        |conn| calibration_fixture(conn, true),
    ) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/report?days=30").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(page
                .body
                .contains("True failure rate from the review sample"));
            assert!(page.body.contains("20 labels on 1 day;"), "{}", page.body);
            let estimates = within(&page.body, "id=\"calibration-estimates\"");
            // All 20 responses: 10 with a negative signal (0-5, 10-13), 11 of the 20 labels
            // bad, with 95% Wilson intervals computed by hand. Every response is labelled, so
            // the signal's mean over the sample is its mean over all: the prediction-powered
            // rate is the labels-only one (its interval is closedloop-stats' to vouch for).
            for group in [
                "<span class=\"muted\">all</span></td>",
                "<span class=\"muted\">template version</span> answer@v1</td>",
                "<span class=\"muted\">model</span> gpt-4o&#60;mini&#62;</td>",
            ] {
                assert!(
                    estimates.contains(&format!(
                        "{group}<td class=\"num\">20</td><td class=\"num\">50.0%</td>\
                         <td class=\"num\">11 of 20</td>\
                         <td class=\"num\">55.0% (34.2%–74.2%)</td>\
                         <td class=\"num\">55.0% ("
                    )),
                    "{group}: {estimates}"
                );
            }
            assert!(!page.body.contains("gpt-4o<mini>"), "{}", page.body);
            // No response names a data source or an index version: those say nothing.
            assert!(!estimates.contains("data source"), "{estimates}");
            assert!(estimates.contains("More labels for ±2.0%"), "{estimates}");
            // The chart: labels only, prediction-powered and signal rate of the one version.
            let chart = within(&page.body, "id=\"calibration-chart\"");
            assert_eq!(chart.matches("<circle").count(), 3, "{chart}");
            assert!(
                chart.contains("data-series=\"answer@v1 labels only\" data-value=\"0.55\""),
                "{chart}"
            );
            assert!(
                chart.contains("data-series=\"answer@v1 signal rate\" data-value=\"0.5\""),
                "{chart}"
            );

            let signals = within(&page.body, "id=\"calibration-signals\"");
            let row = |signal: &str, origin: &str, flagged: u64, precision: &str, recall: &str| {
                format!(
                    "<td>{signal}</td><td>{origin}</td><td class=\"num\">{flagged}</td>\
                     <td class=\"num\">{precision}</td><td class=\"num\">{recall}</td>"
                )
            };
            // thumbs_down flags 0-5: 5 of 6 bad; 5 of the 11 bad responses.
            let thumbs = row(
                "thumbs_down",
                "application",
                6,
                "83.3% (43.6%–97.0%)",
                "45.5% (21.3%–72.0%)",
            );
            // rephrase flags 0 and 10-13: 3 of 5 bad; 3 of 11.
            let rephrase = row(
                "rephrase",
                "detector",
                5,
                "60.0% (23.1%–88.2%)",
                "27.3% (9.7%–56.6%)",
            );
            // copy flags 6-9 by being there: 1 of 4 bad; 1 of 11.
            let copy = row(
                "copy",
                "application",
                4,
                "25.0% (4.6%–69.9%)",
                "9.1% (1.6%–37.7%)",
            );
            for expected in [&thumbs, &rephrase, &copy] {
                assert!(signals.contains(expected.as_str()), "{expected}: {signals}");
            }
            let copy_at = signals.find(copy.as_str()).unwrap();
            let copy_row = &signals[copy_at..copy_at + signals[copy_at..].find("</tr>").unwrap()];
            assert!(copy_row.contains("positive signal"), "{copy_row}");
            let thumbs_at = signals.find(thumbs.as_str()).unwrap();
            let thumbs_row =
                &signals[thumbs_at..thumbs_at + signals[thumbs_at..].find("</tr>").unwrap()];
            assert!(!thumbs_row.contains("positive signal"), "{thumbs_row}");
            // Any negative signal flags 0-5 and 10-13: 7 of 10 bad; 7 of 11. The 4 other bad
            // responses (6, 14, 15, 16) got none.
            assert!(
                signals.contains(
                    "<th>any negative signal</th><td></td><td class=\"num\">10</td>\
                     <td class=\"num\">70.0% (39.7%–89.2%)</td>\
                     <td class=\"num\">63.6% (35.4%–84.8%)</td>"
                ),
                "{signals}"
            );
            assert!(
                page.body.contains(
                    "4 of 11 reviewer-bad responses had no negative signal: 36.4% (15.2%–64.6%)"
                ),
                "{}",
                page.body
            );
            assert!(!page.body.contains("id=\"calibration-empty\""));
        });
    }
}

#[test]
fn without_labels_the_report_points_to_the_review_page() {
    for (store, ()) in support::both_engines(
        "without_labels_the_report_points_to_the_review_page",
        |conn| calibration_fixture(conn, false),
    ) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/report?days=30").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let empty = within(&page.body, "id=\"calibration-empty\"");
            assert!(
                empty.contains("No labelled uniform review sample in this window"),
                "{empty}"
            );
            assert!(empty.contains("href=\"/ui/review\""), "{empty}");
            assert!(!page.body.contains("Signals against reviewer labels"));
            assert!(!page.body.contains("id=\"calibration-chart\""));
            // The signals themselves are still counted.
            assert!(page
                .body
                .contains("<td>thumbs_down</td><td class=\"num\">6</td>"));
        });
    }
}

/// The element that opens with the attribute `marker` (up to the next `</div>` or `</table>`).
fn within<'a>(body: &'a str, marker: &str) -> &'a str {
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {body}"));
    let rest = &body[start..];
    let end = ["</div>", "</table>"]
        .iter()
        .filter_map(|close| rest.find(close))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).unwrap()[1..].to_owned()
}

/// The report lists the monitors' alerts of the window with their owner, due time and state.
#[test]
fn the_report_lists_monitor_alerts() {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (store, ()) in support::both_engines("the_report_lists_monitor_alerts", |conn| {
        calibration_fixture(conn, false);
        let alert = closedloop_store::records::Alert {
            id: 0,
            monitor: "failure_rate/template_version/answer@<v2>".into(),
            kind: "failure_rate".into(),
            dimension: "template_version".into(),
            value: "answer@<v2>".into(),
            direction: "rise".into(),
            fired_s: now_s - 3_600,
            resolved_s: None,
            baseline_rate: 0.1,
            observed_rate: 0.155,
            events: 31,
            trials: 200,
            statistic: 11.0,
            threshold: 9.7,
            owner: Some("answers-team".into()),
            due_s: Some(now_s + 7_200),
            detail: None,
        };
        conn.insert_alert(&alert).unwrap().unwrap();
    }) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/report?days=30").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let table = within(&page.body, "id=\"alerts\"");
            assert!(
                table.contains("failure_rate/template_version/answer@&#60;v2&#62;"),
                "{table}"
            );
            assert!(table.contains("10.0% → 15.5%"), "{table}");
            assert!(
                table.contains("<td>firing</td><td>answers-team</td>"),
                "{table}"
            );
            assert!(!page.body.contains("id=\"alerts-empty\""));
        });
    }
    for (store, ()) in support::both_engines("the_report_without_alerts", |conn| {
        calibration_fixture(conn, false);
    }) {
        run(async {
            let mut console = signed_in(&store).await;
            let page = console.get("/ui/report?days=30").await;
            assert!(page.body.contains("id=\"alerts-empty\""), "{}", page.body);
        });
    }
}
