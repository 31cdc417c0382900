//! The real `closedloop` binary returns the memory of a request spike to the OS once the
//! request is done, instead of keeping its peak resident.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::binary::{serve, serve_command, Serving};

/// A `/proc/PID/status` field, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// 500000 empty attributes: 1 MB on the wire, within the default limits, about 70 MB decoded.
fn spike() -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0x4b; 16],
                    span_id: vec![0x01; 8],
                    name: "spike".into(),
                    attributes: vec![KeyValue::default(); 500_000],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test]
async fn memory_of_a_spike_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("closedloop.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[export]\nuse_env = false\n",
            dir.path().join("closedloop.db")
        ),
    )
    .unwrap();
    let mut command = serve_command(&config);
    command
        .env_remove("MIMALLOC_PURGE_DELAY")
        .env_remove("CLOSEDLOOP_CONFIG");
    let Serving {
        mut child,
        http_addr,
    } = serve(command);
    let pid = child.id();
    // The binary has set mimalloc's purge delay to 0 for itself (same process, executed again).
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|byte| *byte == 0)
            .any(|variable| variable == b"MIMALLOC_PURGE_DELAY=0"),
        "MIMALLOC_PURGE_DELAY=0 not in the environment of the receiver"
    );
    let before = status_kib(pid, "VmRSS");

    let response = reqwest::Client::new()
        .post(format!("http://{http_addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(spike())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let peak = status_kib(pid, "VmHWM");
    assert!(
        peak > before + 20 * 1024,
        "the spike took {before} -> {peak} KiB"
    );
    // The request is done; its memory goes back to the OS as it is freed, rather than staying
    // at the peak. (mimalloc's default delay is 1 s, and then only on the freeing thread's
    // next allocation, so half a second tells the two apart.)
    let returned = |resident: u64| (resident - before.min(resident)) * 2 < peak - before;
    let mut resident = status_kib(pid, "VmRSS");
    for _ in 0..5 {
        if returned(resident) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        resident = status_kib(pid, "VmRSS");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        returned(resident),
        "resident {resident} KiB after the spike, {before} KiB before, peak {peak} KiB"
    );
}
