//! Arize Phoenix, from the virtual environment `scripts/phoenix-env.sh` creates, on loopback
//! with telemetry off and a working directory of its own.
//!
//! The test finds Phoenix's python through `CLOSEDLOOP_TEST_PHOENIX_PYTHON` (set by
//! `scripts/test.sh`). Without it a Phoenix test is skipped with a line on stderr, unless
//! `CLOSEDLOOP_TEST_REQUIRE_PHOENIX=1` (as in `scripts/test.sh`), which makes it fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The python of the environment with Phoenix.
pub const PYTHON_VAR: &str = "CLOSEDLOOP_TEST_PHOENIX_PYTHON";
/// Set to 1 to make a missing Phoenix a failure rather than a skip.
pub const REQUIRE_VAR: &str = "CLOSEDLOOP_TEST_REQUIRE_PHOENIX";
/// How long Phoenix may take to start (it migrates its database first).
const START: Duration = Duration::from_secs(180);

/// A running Phoenix. Dropping it kills the process; its working directory goes with it.
pub struct Phoenix {
    child: Child,
    /// The HTTP base URL: UI, REST API and OTLP/HTTP (`/v1/traces`).
    pub url: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Phoenix {
    /// Starts Phoenix and waits until it answers `/healthz`. `None` (with a line on stderr
    /// naming `test`) without [`PYTHON_VAR`], unless [`REQUIRE_VAR`] is 1.
    pub async fn start(test: &str) -> Option<Phoenix> {
        let Some(python) = std::env::var_os(PYTHON_VAR).map(PathBuf::from) else {
            let reason = format!("{PYTHON_VAR} is not set; scripts/phoenix-env.sh prints it");
            if std::env::var(REQUIRE_VAR).is_ok_and(|value| value == "1") {
                panic!("{test}: {REQUIRE_VAR}=1 but {reason}");
            }
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{test}: skipped: {reason}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let http = super::reserve_addr().await;
        let grpc = super::reserve_addr().await;
        let log = std::fs::File::create(dir.path().join("phoenix.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "phoenix.server.main", "serve"])
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            // No downloads at startup (a WASM sandbox binary) or fonts in its pages.
            .env("PHOENIX_ALLOW_EXTERNAL_RESOURCES", "false")
            .env("PHOENIX_WORKING_DIR", dir.path().join("working"))
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", http.port().to_string())
            .env("PHOENIX_GRPC_PORT", grpc.port().to_string())
            .env_remove("PHOENIX_COLLECTOR_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
        let mut phoenix = Phoenix {
            child,
            url: format!("http://{http}"),
            dir,
            client: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let health = phoenix
                .client
                .get(format!("{}/healthz", phoenix.url))
                .send()
                .await;
            if health.is_ok_and(|response| response.status().is_success()) {
                return Some(phoenix);
            }
            if let Some(status) = phoenix.child.try_wait().unwrap() {
                panic!("Phoenix exited with {status}:\n{}", phoenix.log());
            }
            assert!(
                started.elapsed() < START,
                "Phoenix did not start in {START:?}:\n{}",
                phoenix.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What Phoenix wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("phoenix.log")).unwrap_or_default()
    }

    /// `GET` a REST path (`/v1/...`) as JSON.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Exports spans to Phoenix over OTLP/HTTP, as an application's exporter does.
    pub async fn export(
        &self,
        request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    ) {
        use prost::Message as _;
        let response = self
            .client
            .post(format!("{}/v1/traces", self.url))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The spans of `trace_id` (hex) in `project`, as Phoenix's REST API lists them.
    pub async fn spans(&self, project: &str, trace_id: &str) -> Vec<serde_json::Value> {
        let page = self
            .get(&format!(
                "/v1/projects/{project}/spans?trace_id={trace_id}&limit=100"
            ))
            .await;
        page["data"].as_array().cloned().unwrap_or_default()
    }

    /// The annotations of span `span_id` (hex) in `project`.
    pub async fn span_annotations(&self, project: &str, span_id: &str) -> Vec<serde_json::Value> {
        let page = self
            .get(&format!(
                "/v1/projects/{project}/span_annotations?span_ids={span_id}&limit=100"
            ))
            .await;
        page["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An attribute of a span as Phoenix's REST API returns it (by its dotted key, or nested by
/// its parts); `Null` when absent.
pub fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    let attributes = &span["attributes"];
    match &attributes[key] {
        serde_json::Value::Null => key.split('.').fold(attributes, |value, part| &value[part]),
        value => value,
    }
}
