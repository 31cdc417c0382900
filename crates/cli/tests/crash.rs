//! Durability: every feedback item acknowledged with a 2xx survives SIGKILL of the real
//! `closedloop` binary, and a restart on the same store finds it.
//!
//! The suite kills once. `CLOSEDLOOP_CRASH_KILLS` and `CLOSEDLOOP_CRASH_ITEMS` make it kill
//! more often over more items; the figures in `docs/reliability.md` come from
//! `CLOSEDLOOP_CRASH_KILLS=10 CLOSEDLOOP_CRASH_ITEMS=20000 cargo test -p closedloop-cli
//! --test crash -- --nocapture`.

mod support;

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};
use support::binary::{serve, serve_command, Serving};

const SECRET: &str = "crash-test-feedback-token-secret";
const WORKERS: usize = 4;
/// Feedback items sent in all, unless `CLOSEDLOOP_CRASH_ITEMS` says otherwise.
const DEFAULT_ITEMS: usize = 400;
/// SIGKILLs, unless `CLOSEDLOOP_CRASH_KILLS` says otherwise.
const DEFAULT_KILLS: usize = 1;

/// A count from the environment, or its default.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a count, not {value:?}")),
        Err(_) => default,
    }
}

/// Starts `closedloop serve` on ephemeral ports over the store in `dir`.
fn start(dir: &Path) -> Serving {
    let mut command = serve_command(&dir.join("closedloop.toml"));
    command
        .env("CLOSEDLOOP_FEEDBACK_TOKEN_SECRET", SECRET)
        .env_remove("CLOSEDLOOP_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    serve(command)
}

fn feedback_body(i: usize) -> serde_json::Value {
    let trace_id = format!("{:032x}", 0x5eed_0000_u128 + i as u128);
    let span_id = format!("{:016x}", 0xfeed_0000_u64 + i as u64);
    let token = issue_feedback_token(
        SECRET.as_bytes(),
        TraceId::from_hex(&trace_id).unwrap(),
        SpanId::from_hex(&span_id).unwrap(),
        SystemTime::now() + Duration::from_secs(3600),
    );
    serde_json::json!({
        "response": { "trace_id": trace_id, "span_id": span_id },
        "signal": "thumbs_down",
        "feedback_token": token,
        "idempotency_id": format!("fb-crash-{i:05}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_feedback_survives_sigkill() {
    let items = env_count("CLOSEDLOOP_CRASH_ITEMS", DEFAULT_ITEMS);
    let kills = env_count("CLOSEDLOOP_CRASH_KILLS", DEFAULT_KILLS);
    // Each run between two kills acknowledges this many items before the kill.
    let per_run = items / (kills + 1);
    assert!(
        per_run >= WORKERS,
        "{items} items are too few for {kills} kills"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").join("closedloop.db");
    std::fs::write(
        dir.path().join("closedloop.toml"),
        format!(
            "[store]\npath = {store:?}\n\n[feedback]\nrate_limit_per_min = 0\n\n[export]\nuse_env = false\n"
        ),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Items not acknowledged yet; one whose request failed goes back, as a client would retry.
    let pending = Arc::new(Mutex::new((0..items).collect::<VecDeque<usize>>()));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let retried = Arc::new(AtomicUsize::new(0));
    let mut killed = 0;
    let mut running = start(dir.path());
    loop {
        let url = format!("http://{}/v1/feedback", running.http_addr);
        let before = acknowledged.lock().unwrap().len();
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                let queues = Queues {
                    pending: pending.clone(),
                    acknowledged: acknowledged.clone(),
                    retried: retried.clone(),
                };
                tokio::spawn(send_until_refused(client, url, queues))
            })
            .collect();
        if killed == kills {
            for worker in workers {
                worker.await.unwrap();
            }
            break;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while acknowledged.lock().unwrap().len() < before + per_run {
            assert!(
                Instant::now() < deadline,
                "feedback was not acknowledged in time"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Child::kill is SIGKILL on Unix: no shutdown hook runs.
        running.child.kill().unwrap();
        running.child.wait().unwrap();
        for worker in workers {
            worker.await.unwrap();
        }
        killed += 1;
        assert!(
            !pending.lock().unwrap().is_empty(),
            "kill {killed} came after every item; nothing was tested mid-stream"
        );

        // Restart on the same store: it opens (recovering the WAL), serves, and holds every
        // item acknowledged so far.
        running = start(dir.path());
        let health = client
            .get(format!("http://{}/healthz", running.http_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_none_lost(&store, &acknowledged.lock().unwrap());
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let distinct: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(
        distinct.len(),
        items,
        "every item was acknowledged in the end"
    );
    assert_none_lost(&store, &acknowledged);
    assert_eq!(
        stored_feedback_ids(&store).len(),
        items,
        "an item retried after a kill is stored once"
    );
    eprintln!(
        "crash test: {items} items, {} acknowledgements, {} requests retried after a kill, \
         {killed} kills survived, 0 acknowledged items lost",
        acknowledged.len(),
        retried.load(Ordering::Relaxed)
    );

    // A repeated item after the restarts is recognised as a duplicate.
    let again = client
        .post(format!("http://{}/v1/feedback", running.http_addr))
        .json(&feedback_body(0))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    // SIGTERM: graceful shutdown, exit status 0.
    let pid = running.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = running.child.wait().unwrap();
    assert!(exit.success(), "closedloop exited with {exit}");
}

/// What the clients share.
struct Queues {
    /// Items not acknowledged yet.
    pending: Arc<Mutex<VecDeque<usize>>>,
    /// The feedback id of every 2xx answer.
    acknowledged: Arc<Mutex<Vec<String>>>,
    /// Requests that failed and went back to `pending`.
    retried: Arc<AtomicUsize>,
}

/// Sends pending items until none is left or the receiver stops answering; an item whose
/// request failed goes back to `pending`.
async fn send_until_refused(client: reqwest::Client, url: String, queues: Queues) {
    let Queues {
        pending,
        acknowledged,
        retried,
    } = queues;
    loop {
        let Some(item) = pending.lock().unwrap().pop_front() else {
            return;
        };
        let response = match client.post(&url).json(&feedback_body(item)).send().await {
            Ok(response) => response,
            Err(_) => {
                pending.lock().unwrap().push_back(item);
                retried.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let status = response.status();
        assert!(status.is_success(), "unexpected status {status}");
        // A kill between the status line and the body loses the answer, not the item.
        let Ok(json) = response.json::<serde_json::Value>().await else {
            pending.lock().unwrap().push_back(item);
            retried.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let id = json["feedback_id"].as_str().unwrap().to_owned();
        acknowledged.lock().unwrap().push(id);
    }
}

/// Fails when an acknowledged item is missing from the store.
fn assert_none_lost(store: &Path, acknowledged: &[String]) {
    let stored = stored_feedback_ids(store);
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged items lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

/// The feedback ids in the store, read with SQLite directly.
fn stored_feedback_ids(store: &Path) -> HashSet<String> {
    let mut connection = closedloop_store::Connection::inspect_sqlite_file(store, false).unwrap();
    connection
        .inspect_rows("SELECT feedback_id FROM feedback", &[], 1)
        .unwrap()
        .into_iter()
        .map(|row| row[0].text().unwrap().to_owned())
        .collect()
}
