//! The real `closedloop serve` exports to the endpoint its flag names, whatever
//! `OTEL_EXPORTER_OTLP_ENDPOINT` says (flags, then environment, then file).

mod support;

use std::time::Duration;

use prost::Message;
use support::binary::{serve, serve_command, Serving};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn serve_exports_to_the_flag_endpoint_over_the_otel_variable() {
    let dir = tempfile::tempdir().unwrap();
    let flag_sink = Sink::grpc().await;
    let env_sink = Sink::grpc().await;
    let file_sink = Sink::grpc().await;
    let config = dir.path().join("closedloop.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[export]\nendpoint = \"http://{}\"\nprotocol = \"grpc\"\n\
             initial_backoff_millis = 50\n",
            dir.path().join("closedloop.db"),
            file_sink.addr,
        ),
    )
    .unwrap();

    let mut command = serve_command(&config);
    command
        .arg("--export-endpoint")
        .arg(format!("http://{}", flag_sink.addr))
        // Nothing inherited: only the variables set here (`env_clear` drops `RUST_LOG` too).
        .env_clear()
        .env("RUST_LOG", "info")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", env_sink.addr),
        );
    let Serving {
        child: mut receiver,
        http_addr,
    } = serve(command);

    let response = ids();
    let body = request(vec![
        generation_span(response, &Generation::default()),
        feedback_span(child(response), Some(response), "thumbs_down", vec![]),
    ])
    .encode_to_vec();
    let sent = reqwest::Client::new()
        .post(format!("http://{http_addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());

    let exported = flag_sink.wait_for(1, Duration::from_secs(20)).await;
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(exported.len(), 1);
    assert_eq!(env_sink.requests(), 0, "the environment lost to the flag");
    assert_eq!(file_sink.requests(), 0, "the file lost to the flag");
}
