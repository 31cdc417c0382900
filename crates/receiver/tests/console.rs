//! The console in real headless Chromium, on a real receiver fed over OTLP: the overview chart
//! draws the points the store holds, a state change without the CSRF token is refused, and a
//! console beyond loopback without credentials refuses to start.

mod support;

use std::time::Duration;

use closedloop_console::{hash_password, UiUser};
use closedloop_receiver::{Config, Listeners, Receiver};
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::records::DayVersionCount;
use support::browser::Browser;
use support::receiver::TestReceiver;
use support::{feedback_span, generation_span, ids, Generation};
use tokio::net::TcpListener;

/// Signs in to the console of `receiver` as `name` (loopback: a name, no password).
async fn sign_in(browser: &Browser, receiver: &TestReceiver, name: &str) {
    browser.open(&receiver.http_url("/ui/login")).await;
    browser.fill("input[name=name]", name).await;
    browser.submit("form[action='/ui/login']").await;
    browser.wait_for_text("header .user", name).await;
}

/// Sends `count` answers of `version` and thumbs-down feedback on the first `failed`.
async fn answers(receiver: &TestReceiver, version: &'static str, count: usize, failed: usize) {
    let generation = Generation {
        template_version: version,
        ..Generation::default()
    };
    let mut spans = Vec::new();
    for index in 0..count {
        let response = ids();
        spans.push(generation_span(response, &generation));
        if index < failed {
            spans.push(feedback_span(
                support::child(response),
                Some(response),
                "thumbs_down",
                vec![],
            ));
        }
    }
    receiver.export_spans(spans).await;
}

#[tokio::test]
async fn the_overview_chart_draws_the_points_the_store_holds() {
    let Some(browser) = Browser::start("the_overview_chart_draws_the_points_the_store_holds").await
    else {
        return;
    };
    let receiver = TestReceiver::start(|_| {}).await;
    answers(&receiver, "v3", 40, 6).await;
    answers(&receiver, "v4", 25, 2).await;
    let expected = {
        let mut store = receiver.read_store();
        support::eventually(Duration::from_secs(10), || {
            store
                .day_version_counts(0)
                .unwrap()
                .iter()
                .map(|count| count.failures)
                .sum::<u64>()
                == 8
        })
        .await;
        store.day_version_counts(0).unwrap()
    };

    sign_in(&browser, &receiver, "ana").await;
    browser.open(&receiver.http_url("/ui/?days=7")).await;
    browser.wait_for_text("#responses", "65").await;
    assert_points_match(&rate_points(&browser).await, &expected);
    // The category bars add up to the records.
    let bars = browser
        .script(
            "return [...document.querySelectorAll('#category-chart rect')]
                .reduce((sum, r) => sum + Number(r.dataset.value), 0);",
        )
        .await;
    assert_eq!(bars.as_u64(), Some(8));

    // The report compares the two versions; the eval set lists the failures as cases.
    browser.open(&receiver.http_url("/ui/report")).await;
    browser
        .wait_for_text("main", "answer_with_context@v3 → answer_with_context@v4")
        .await;
    let intervals = browser
        .script("return document.querySelectorAll('#report-chart circle').length;")
        .await;
    assert_eq!(intervals.as_u64(), Some(2));
    browser.open(&receiver.http_url("/ui/evalset")).await;
    browser
        .wait_for_text("main", "from 8 failure records")
        .await;
    browser.close().await;
    receiver.stop().await.unwrap();
}

/// Reads the points of the rate chart.
async fn rate_points(browser: &Browser) -> Vec<serde_json::Value> {
    browser
        .script(
            "return [...document.querySelectorAll('#rate-chart circle')].map(c => ({
                series: c.dataset.series, day: c.dataset.x, value: Number(c.dataset.value) }));",
        )
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Each count of the store is one point of the chart, at the failure rate of that day and
/// version, and the chart has no other point.
fn assert_points_match(points: &[serde_json::Value], expected: &[DayVersionCount]) {
    assert_eq!(points.len(), expected.len(), "{points:?} vs {expected:?}");
    for count in expected {
        let series = format!(
            "{}@{}",
            count.template_id.as_deref().unwrap(),
            count.template_version.as_deref().unwrap()
        );
        let day = closedloop_engine::timefmt::format_day(count.day);
        let point = points
            .iter()
            .find(|point| point["series"] == series.as_str() && point["day"] == day.as_str())
            .unwrap_or_else(|| panic!("no point for {series} on {day}: {points:?}"));
        let rate = count.failures as f64 / count.responses as f64;
        assert!(
            (point["value"].as_f64().unwrap() - rate).abs() < 1e-9,
            "{point} vs {rate}"
        );
    }
}

#[tokio::test]
async fn a_week_of_traffic_draws_a_point_per_version_and_day() {
    let Some(browser) = Browser::start("a_week_of_traffic_draws_a_point_per_version_and_day").await
    else {
        return;
    };
    // A week of traffic, filled the way the receiver fills the store, under a real receiver.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("week.db");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let config = closedloop_store::StoreConfig {
        path: path.clone(),
        ..closedloop_store::StoreConfig::default()
    };
    let mut spec = Spec::new(6_000, 420, now_s);
    spec.days = 7;
    populate(
        &mut closedloop_store::Connection::open(&config, closedloop_store::Access::Writer).unwrap(),
        &spec,
    )
    .unwrap();
    let receiver = TestReceiver::start(|config| config.store.path = path.clone()).await;
    let first_day = now_s / 86_400 - 6;
    let expected = receiver
        .read_store()
        .day_version_counts(first_day * 86_400)
        .unwrap();

    sign_in(&browser, &receiver, "ana").await;
    browser.open(&receiver.http_url("/ui/?days=7")).await;
    browser.wait_for_text("#responses", "6000").await;
    assert_points_match(&rate_points(&browser).await, &expected);
    browser.screenshot("overview").await;
    browser.open(&receiver.http_url("/ui/report?days=7")).await;
    browser.wait_for_text("main", "Did the change help?").await;
    browser.screenshot("report").await;
    browser.open(&receiver.http_url("/ui/evalset?days=7")).await;
    browser
        .wait_for_text("main", "from 420 failure records")
        .await;
    browser.screenshot("evalset").await;
    browser.close().await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_refused() {
    let Some(browser) = Browser::start("a_state_change_without_the_csrf_token_is_refused").await
    else {
        return;
    };
    let receiver = TestReceiver::start(|_| {}).await;
    sign_in(&browser, &receiver, "ana").await;
    browser.open(&receiver.http_url("/ui/triage")).await;
    // The sign-out form is a state change; strip its token as a forged form would lack it.
    browser
        .script("document.querySelector('form.who input[name=csrf]').remove(); return null;")
        .await;
    browser.click("form.who button").await;
    browser.wait_for_text("main", "CSRF").await;
    assert!(
        browser.title().await.starts_with("403"),
        "{}",
        browser.title().await
    );
    // Still signed in.
    browser.open(&receiver.http_url("/ui/triage")).await;
    browser.wait_for_text("header .user", "ana").await;
    browser.close().await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn content_shown_on_a_page_is_text_not_markup() {
    let Some(browser) = Browser::start("content_shown_on_a_page_is_text_not_markup").await else {
        return;
    };
    let receiver = TestReceiver::start(|_| {}).await;
    // A version name is application data shown on the overview.
    answers(&receiver, "<img src=x onerror=alert(1)>", 3, 1).await;
    sign_in(&browser, &receiver, "ana").await;
    browser.open(&receiver.http_url("/ui/?days=7")).await;
    browser
        .wait_for_text("table.versions", "<img src=x onerror=alert(1)>")
        .await;
    let injected = browser
        .script("return document.querySelectorAll('table.versions img').length;")
        .await;
    assert_eq!(injected.as_u64(), Some(0));
    browser.close().await;
    receiver.stop().await.unwrap();
}

/// Serves a receiver on all interfaces, configured by `configure`, and returns how serving
/// ended and what `GET /ui/login` answered meanwhile (status and body), if it got that far.
async fn serve_on_all_interfaces(
    configure: impl FnOnce(&mut Config),
) -> (Result<(), String>, Option<(u16, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.path = dir.path().join("closedloop.db");
    config.server.grpc_addr = "0.0.0.0:0".parse().unwrap();
    config.server.http_addr = "0.0.0.0:0".parse().unwrap();
    config.export.use_env = false;
    configure(&mut config);
    let listeners = Listeners {
        grpc: TcpListener::bind("0.0.0.0:0").await.unwrap(),
        http: TcpListener::bind("0.0.0.0:0").await.unwrap(),
        feedback: None,
        ui: match config.ui.listen_addr {
            Some(_) => Some(TcpListener::bind("0.0.0.0:0").await.unwrap()),
            None => None,
        },
    };
    let http_port = listeners.http.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        Receiver::builder(config)
            .build()
            .serve(listeners, async move {
                let _ = stopped.await;
            }),
    );
    let url = format!("http://127.0.0.1:{http_port}/ui/login");
    let mut answered = None;
    for _ in 0..100 {
        if served.is_finished() {
            break;
        }
        if let Ok(reply) = reqwest::get(&url).await {
            answered = Some((
                reply.status().as_u16(),
                reply.text().await.unwrap_or_default(),
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let result = served.await.unwrap().map_err(|error| {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(next) = source {
            text.push_str(": ");
            text.push_str(&next.to_string());
            source = next.source();
        }
        text
    });
    (result, answered)
}

#[tokio::test]
async fn a_console_beyond_loopback_without_credentials_refuses_to_serve_or_to_start() {
    // Under /ui/ of an HTTP listener on all interfaces (for OTLP), the receiver serves OTLP
    // and the console refuses every page.
    let (served, answered) = serve_on_all_interfaces(|_| {}).await;
    served.unwrap();
    let (status, body) = answered.expect("the receiver answered");
    assert_eq!(status, 403);
    assert!(body.contains("not served here"), "{body}");
    assert!(body.contains("without authentication"), "{body}");
    // On a listener of its own beyond loopback, it refuses to start.
    let (refused, _) = serve_on_all_interfaces(|config| {
        config.ui.listen_addr = Some("0.0.0.0:0".parse().unwrap());
    })
    .await;
    let refused = refused.unwrap_err();
    assert!(refused.contains("without authentication"), "{refused}");
    // With users, the same receiver serves the console.
    let (served, answered) = serve_on_all_interfaces(|config| {
        config.ui.users = vec![UiUser {
            name: "ana".into(),
            password_hash: hash_password("correct horse battery").unwrap(),
        }];
    })
    .await;
    served.unwrap();
    let (status, body) = answered.expect("the receiver answered");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("type=\"password\""), "{body}");
}
