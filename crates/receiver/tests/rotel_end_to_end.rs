//! End to end with real peers: an application instrumented with the OpenTelemetry Python SDK
//! exports to rotel (the Rust collector, from PyPI), started through the shipped
//! `collector-config/rotel-agent.sh`; rotel forwards to closedloop, which exports the failure
//! record to a test OTLP backend. The record must arrive in the judged trace with its links.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::python::{assert_emitted_failure_record, emit_feedback, repo_root, rotel_agent};
use support::receiver::TestReceiver;
use support::*;

/// rotel batches for up to 200 ms (the script's setting) and retries a closedloop that is not
/// up yet, so the whole hop takes well under a second; the margin is for loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

/// rotel-agent running `collector-config/rotel-agent.sh`; killed on drop.
struct Rotel(Child);

impl Rotel {
    fn start(grpc: &str, http: &str, closedloop: &str) -> Rotel {
        let child = Command::new("bash")
            .arg(repo_root().join("collector-config/rotel-agent.sh"))
            .env("ROTEL_AGENT", rotel_agent())
            .env("ROTEL_GRPC_ENDPOINT", grpc)
            .env("ROTEL_HTTP_ENDPOINT", http)
            .env("CLOSEDLOOP_ENDPOINT", closedloop)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rotel-agent");
        Rotel(child)
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `addr`.
async fn wait_listening(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotel-agent is not listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn python_sdk_through_rotel_to_closedloop_to_the_backend() {
    let backend = Sink::grpc().await;
    let (endpoint, protocol) = backend.endpoint();
    let receiver = TestReceiver::start(|config| {
        config.export.endpoint = Some(endpoint);
        config.export.protocol = Some(protocol);
        config.join.wait_secs = 5;
    })
    .await;

    let rotel_grpc = reserve_addr().await;
    let rotel_http = reserve_addr().await;
    let _rotel = Rotel::start(
        &rotel_grpc.to_string(),
        &rotel_http.to_string(),
        &receiver.grpc_url(),
    );
    wait_listening(rotel_grpc).await;

    let (trace_id, span_id) = emit_feedback("grpc", format!("http://{rotel_grpc}")).await;

    let records = backend.wait_for(1, WAIT).await;
    assert_emitted_failure_record(&records[0], &trace_id, &span_id);

    receiver.stop().await.unwrap();
    backend.stop().await;
}
