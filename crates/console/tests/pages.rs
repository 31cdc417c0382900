//! The overview, report and eval set pages over a store filled the way the receiver fills it
//! (`closedloop_store::bulk`), on SQLite and PostgreSQL: what they show matches what the store
//! holds.

mod support;

use axum::http::{header, StatusCode};
use closedloop_console::UiConfig;
use closedloop_store::bulk::{populate, Populated, Spec};
use closedloop_store::testing::TestStore;
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
                page.body.matches("<circle").count(),
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

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).unwrap()[1..].to_owned()
}
