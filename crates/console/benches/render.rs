//! Page render times of the console on a large store: p50 and p99 of the overview, the
//! record list (unfiltered and filtered), a record page, the review page and the triage
//! board, over a SQLite store with 1M indexed responses and 50K failure records
//! (`closedloop_store::bulk::Spec::benchmark`), through the console's router (no socket).
//! The sign-in page, which reads no store, is the baseline each page is quoted against.
//!
//! ```text
//! cargo bench -p closedloop-console --bench render
//! ```
//!
//! The store is filled once and kept at `target/console-bench/closedloop.db` (about 500 MB,
//! half a minute to fill); `CONSOLE_BENCH_REFILL=1` fills it again. `CONSOLE_BENCH_RUNS`
//! sets the requests per page (default 200).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use closedloop_console::{Console, UiConfig};
use closedloop_engine::direct::DirectSettings;
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::{Access, Connection, StoreConfig};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn store() -> StoreConfig {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("closedloop.db");
    let refill = std::env::var_os("CONSOLE_BENCH_REFILL").is_some();
    // A store filled on another day has its review sample on that day: fill again.
    let stamp = dir.join("filled-on");
    let today = (now_s() / 86_400).to_string();
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|day| day == today);
    let config = StoreConfig {
        path: path.clone(),
        ..StoreConfig::default()
    };
    if refill || !fresh || !path.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let started = Instant::now();
        let mut conn = Connection::open(&config, Access::Writer).unwrap();
        let filled = populate(&mut conn, &Spec::benchmark(now_s())).unwrap();
        println!(
            "filled {} responses, {} failure records, {} feedback rows in {:.1} s",
            filled.responses,
            filled.failures,
            filled.feedback,
            started.elapsed().as_secs_f64()
        );
        std::fs::write(&stamp, &today).unwrap();
    }
    config
}

struct Client {
    router: Router,
    cookie: String,
}

impl Client {
    async fn get(&self, path: &str) -> (StatusCode, String, Option<String>) {
        let request = Request::get(path)
            .header(header::HOST, "127.0.0.1:4318")
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let cookie = response.headers().get(header::SET_COOKIE).map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        });
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), cookie)
    }

    async fn sign_in(router: Router) -> Self {
        let mut client = Self {
            router,
            cookie: String::new(),
        };
        let (_, body, cookie) = client.get("/ui/login").await;
        client.cookie = cookie.unwrap();
        let at = body.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &body[at..at + 32];
        let request = Request::post("/ui/login")
            .header(header::HOST, "127.0.0.1:4318")
            .header(header::COOKIE, &client.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&name=bench")))
            .unwrap();
        let response = client.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        client.cookie = response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        client
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn measure(
    client: &Client,
    name: &str,
    path: &str,
    runs: usize,
    baseline: Option<Duration>,
) -> Duration {
    let (status, body, _) = client.get(path).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        &body[..body.len().min(500)]
    );
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let (status, _, _) = client.get(path).await;
        times.push(started.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    times.sort();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    let ratio = baseline.map_or(String::new(), |base| {
        format!(
            "  ({:.1}x / {:.1}x the sign-in page)",
            p50.as_secs_f64() / base.as_secs_f64(),
            p99.as_secs_f64() / base.as_secs_f64()
        )
    });
    println!(
        "{name:<28} p50 {:>9.3} ms  p99 {:>9.3} ms  ({} bytes){ratio}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        body.len()
    );
    p50
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store();
        let runs: usize = std::env::var("CONSOLE_BENCH_RUNS")
            .ok()
            .and_then(|runs| runs.parse().ok())
            .unwrap_or(200);
        let (record, review_item, owner) = {
            let mut conn = Connection::open(&store, Access::Command).unwrap();
            let records = conn.triage_records().unwrap();
            let middle = &records[records.len() / 2];
            let id = format!(
                "fr_{}_{}",
                hex::encode(middle.key.trace_id),
                hex::encode(middle.key.span_id)
            );
            let today = closedloop_engine::timefmt::format_day(now_s() / 86_400);
            let item = conn.review_items(Some(&today), false).unwrap()[0].id;
            (id, item, middle.owner.clone().unwrap_or_default())
        };
        let console = Console::new(&UiConfig::default(), store, DirectSettings::default()).unwrap();
        let client = Client::sign_in(console.router()).await;

        let started = Instant::now();
        let (status, _, _) = client.get("/ui/").await;
        assert_eq!(status, StatusCode::OK);
        println!(
            "overview counts of 30 days computed in {:.0} ms (then served from memory for a minute)",
            started.elapsed().as_secs_f64() * 1e3
        );
        let baseline = measure(&client, "sign-in page (baseline)", "/ui/login", runs, None).await;
        let pages = [
            ("overview", "/ui/".to_owned()),
            ("record list", "/ui/records".to_owned()),
            ("record list, filtered", format!("/ui/records?status=open&owner={owner}")),
            ("record page", format!("/ui/records/{record}")),
            ("review page", format!("/ui/review/{review_item}")),
            ("triage board", "/ui/triage".to_owned()),
        ];
        for (name, path) in pages {
            measure(&client, name, &path, runs, Some(baseline)).await;
        }
    });
}
