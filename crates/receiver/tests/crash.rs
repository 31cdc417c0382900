//! Durability: every feedback item acknowledged with a 2xx survives SIGKILL of the real
//! `closedloop` binary, and a restart on the same store finds it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};

const SECRET: &str = "crash-test-feedback-token-secret";
const ITEMS: usize = 400;
const WORKERS: usize = 4;
/// SIGKILL once this many items were acknowledged.
const KILL_AFTER: usize = 100;

struct Running {
    child: Child,
    http_addr: SocketAddr,
}

/// Starts `closedloop serve` on ephemeral ports and reads the bound HTTP address from its log.
fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_closedloop"))
        .arg("serve")
        .arg("--config")
        .arg(dir.join("closedloop.toml"))
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("CLOSEDLOOP_FEEDBACK_TOKEN_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .env_remove("CLOSEDLOOP_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn closedloop");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("http_addr="))
            {
                let _ = tx.send(addr.parse::<SocketAddr>().expect("http_addr"));
            }
            eprintln!("closedloop: {line}");
        }
    });
    let http_addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("closedloop logs its listen address");
    Running { child, http_addr }
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
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").join("closedloop.db");
    std::fs::write(
        dir.path().join("closedloop.toml"),
        format!(
            "[store]\npath = {store:?}\n\n[feedback]\nrate_limit_per_min = 0\n\n[export]\nuse_env = false\n"
        ),
    )
    .unwrap();

    let mut first = start(dir.path());
    let url = format!("http://{}/v1/feedback", first.http_addr);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (client, url, acknowledged, killed) = (
            client.clone(),
            url.clone(),
            acknowledged.clone(),
            killed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in (worker..ITEMS).step_by(WORKERS) {
                if killed.load(Ordering::Relaxed) && refused > 0 {
                    break;
                }
                let body = feedback_body(i);
                match client.post(&url).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        let json: serde_json::Value = match response.json().await {
                            Ok(json) => json,
                            Err(_) => continue,
                        };
                        let id = json["feedback_id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().push(id);
                    }
                    Ok(response) => panic!("unexpected status {}", response.status()),
                    Err(_) => refused += 1,
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "feedback was not acknowledged in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Child::kill is SIGKILL on Unix: no shutdown hook runs.
    first.child.kill().unwrap();
    killed.store(true, Ordering::Relaxed);
    first.child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER);
    assert!(
        acknowledged.len() < ITEMS,
        "the kill came after every item; nothing was tested mid-stream"
    );

    // Restart on the same store: it opens (recovering the WAL) and serves.
    let mut second = start(dir.path());
    let health = client
        .get(format!("http://{}/healthz", second.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let stored = stored_feedback_ids(&store);
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

    // A repeated item after the restart is recognised as a duplicate.
    let again = client
        .post(format!("http://{}/v1/feedback", second.http_addr))
        .json(&feedback_body(0))
        .send()
        .await
        .unwrap();
    if acknowledged.iter().any(|id| id == "fb-crash-00000") {
        assert_eq!(again.status(), 200);
    }

    // SIGTERM: graceful shutdown, exit status 0.
    let pid = second.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = second.child.wait().unwrap();
    assert!(exit.success(), "closedloop exited with {exit}");
}

/// The feedback ids in the store, read with SQLite directly.
fn stored_feedback_ids(store: &Path) -> std::collections::HashSet<String> {
    let connection =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = connection
        .prepare("SELECT feedback_id FROM feedback")
        .unwrap();
    let ids = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}
