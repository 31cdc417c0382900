//! The printing commands end quietly and successfully when their standard output is a pipe
//! whose reader has gone (`closedloop triage list | head -1`).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use closedloop_receiver::Pipeline;
use support::*;

/// A store holding failure records (so every command below has something to print).
async fn store_with_records(dir: &Path) -> std::path::PathBuf {
    let pipeline = Pipeline::start(config(dir, None)).await.unwrap();
    let mut spans = Vec::new();
    for _ in 0..3 {
        let response = ids();
        spans.push(generation_span(response, &Generation::default()));
        spans.push(feedback_span(
            child(response),
            Some(response),
            "thumbs_down",
            vec![],
        ));
    }
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();
    dir.join("closedloop.db")
}

/// Runs `closedloop ARGS...` with standard output a pipe whose read end is already closed,
/// so the first write fails with a broken pipe. Returns the exit status and standard error.
fn run_into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_closedloop"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn printing_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path()).await;
    let store = store.to_str().unwrap();

    // The records are there: the commands print them to a live stdout.
    let listed = Command::new(env!("CARGO_BIN_EXE_closedloop"))
        .args(["triage", "--store-path", store, "list"])
        .env_clear()
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 3);

    for args in [
        vec!["triage", "--store-path", store, "list"],
        vec!["triage", "--store-path", store, "list", "--json"],
        vec!["evalset", "--store-path", store, "export"],
        vec![
            "evalset",
            "--store-path",
            store,
            "export",
            "--format",
            "csv",
        ],
        vec!["report", "--store-path", store],
        vec!["check-config"],
    ] {
        let (status, stderr) = run_into_closed_pipe(&args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("failed printing"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Error"), "{args:?}: {stderr}");
        assert!(status.success(), "{args:?}: {status:?} {stderr}");
    }
}
