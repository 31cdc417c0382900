//! `closedloop check-config`, run as the binary: it shows the effective configuration (flags
//! over environment over file), redacts every secret, and refuses what `serve` would refuse.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `closedloop ARGS...` with exactly the variables `env` (nothing inherited that could
/// change the configuration).
fn closedloop(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closedloop"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("closedloop.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The export line check-config ends with.
fn export_line(output: &Output) -> String {
    let text = stdout(output);
    text.lines()
        .find(|line| line.starts_with("Failure records"))
        .unwrap_or_else(|| panic!("no export line in {text}"))
        .to_owned()
}

#[test]
fn flag_beats_environment_beats_file_for_the_export_endpoint_and_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[export]\nendpoint = \"http://file:4318\"\nprotocol = \"http/protobuf\"\n",
    );
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    let check = |flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["check-config", "--config", config.as_str()];
        args.extend_from_slice(flags);
        export_line(&closedloop(&args, env))
    };

    assert_eq!(
        check(&[], &[]),
        "Failure records are exported over http/protobuf to http://file:4318/v1/traces."
    );
    assert_eq!(
        check(&[], &otel),
        "Failure records are exported over grpc to http://otel:4317."
    );
    assert_eq!(
        check(
            &[
                "--export-endpoint",
                "http://flag:4318",
                "--export-protocol",
                "http/protobuf"
            ],
            &otel
        ),
        "Failure records are exported over http/protobuf to http://flag:4318/v1/traces."
    );
    // Each setting on its own: the flag's endpoint with the environment's protocol.
    assert_eq!(
        check(&["--export-endpoint", "http://flag:4317"], &otel),
        "Failure records are exported over grpc to http://flag:4317."
    );
    // A CLOSEDLOOP_ variable stands for its flag: above OTEL_*, below the flag itself.
    let closedloop_env = [
        otel[0],
        otel[1],
        ("CLOSEDLOOP_EXPORT_ENDPOINT", "http://closedloop-env:4318"),
        ("CLOSEDLOOP_EXPORT_PROTOCOL", "http/protobuf"),
    ];
    assert_eq!(
        check(&[], &closedloop_env),
        "Failure records are exported over http/protobuf to http://closedloop-env:4318/v1/traces."
    );
    assert_eq!(
        check(
            &[
                "--export-endpoint",
                "http://flag:4317",
                "--export-protocol",
                "grpc"
            ],
            &closedloop_env
        ),
        "Failure records are exported over grpc to http://flag:4317."
    );
}

#[test]
fn flag_beats_its_variable_beats_file_for_the_store_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[store]\npath = \"from-file.db\"\n");
    let run = |flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["check-config", "--config", config.as_str()];
        args.extend_from_slice(flags);
        stdout(&closedloop(&args, env))
    };
    assert!(run(&[], &[]).contains("\"from-file.db\""));
    let env = [("CLOSEDLOOP_STORE_PATH", "from-env.db")];
    assert!(run(&[], &env).contains("\"from-env.db\""));
    assert!(run(&["--store-path", "from-flag.db"], &env).contains("\"from-flag.db\""));
}

#[test]
fn secrets_are_redacted_and_the_effective_endpoint_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[feedback]
token_secret = "file-token-secret-of-at-least-32-bytes"
[export]
endpoint = "http://file:4318"
headers = { authorization = "Bearer file-header-token" }
[notify]
webhook_url = "https://hooks.slack.com/services/T000/B000/webhook-secret"
"#,
    );
    let env = [
        (
            "CLOSEDLOOP_FEEDBACK_TOKEN_SECRET",
            "env-token-secret-of-at-least-32-bytes",
        ),
        ("CLOSEDLOOP_INGEST_TOKEN", "env-ingest-token"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=env-header-key,authorization=Bearer%20env-header-token",
        ),
    ];
    let text = stdout(&closedloop(&["check-config", "--config", &config], &env));
    for secret in [
        "file-token-secret",
        "env-token-secret",
        "env-ingest-token",
        "file-header-token",
        "env-header-token",
        "env-header-key",
        "webhook-secret",
        "hooks.slack.com",
    ] {
        assert!(!text.contains(secret), "{secret} shown in:\n{text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
    // The header names are not secrets; the endpoint is the environment's, not the file's.
    assert!(text.contains("\"x-api-key\""), "{text}");
    assert!(
        text.contains("\"http://collector:4318/v1/traces\""),
        "{text}"
    );
    assert!(
        text.contains(
            "Failure records are exported over http/protobuf to http://collector:4318/v1/traces."
        ),
        "{text}"
    );
}

#[test]
fn invalid_settings_fail_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        (
            "[feedback]\nallowed_origins = [\"https://app.example.com/\"]\n",
            "feedback.allowed_origins",
        ),
        ("[export]\nendpoint = \"not a url\"\n", "export.endpoint"),
        (
            "[review]\nimplicit_negative_share = 7.5\n",
            "review.implicit_negative_share",
        ),
        (
            "[detectors.rephrase]\nthreshold = 1.5\n",
            "detectors.rephrase.threshold",
        ),
        (
            "[store]\nprune_interval_secs = 0\n",
            "store.prune_interval_secs",
        ),
        (
            "[notify]\nwebhook_url = \"hooks.slack.com/services/secret-part\"\n",
            "notify.webhook_url",
        ),
    ] {
        let config = write_config(dir.path(), text);
        let output = closedloop(&["check-config", "--config", &config], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text} accepted");
        assert!(stderr.contains(key), "{text}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("secret-part"), "{stderr}");
        assert!(output.stdout.is_empty(), "nothing printed for {text}");
    }
    // A bad OTEL_ value names the variable.
    let output = closedloop(
        &["check-config"],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
}

#[test]
fn the_readme_export_example_resolves_to_grpc() {
    let readme = include_str!("../../../README.md");
    let example = readme
        .lines()
        .position(|line| line.contains("--export-endpoint"))
        .expect("the README has an export example");
    // The command spans this line and the one before it (`\` continuation).
    let lines = readme.lines().collect::<Vec<_>>();
    let command = format!("{} {}", lines[example - 1], lines[example]);
    let words = command
        .split('#')
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|word| *word != "\\")
        .skip_while(|word| *word != "serve")
        .skip(1)
        .map(|word| {
            if word == "closedloop.example.toml" {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../closedloop.example.toml")
            } else {
                word
            }
        })
        .collect::<Vec<_>>();
    let mut args = vec!["check-config"];
    args.extend(words);
    assert_eq!(
        export_line(&closedloop(&args, &[])),
        "Failure records are exported over grpc to http://localhost:4317.",
        "{args:?}"
    );
}

#[test]
fn check_config_says_where_the_console_is_and_why_it_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let console_line = |text: &str| {
        let config = write_config(dir.path(), text);
        let text = stdout(&closedloop(&["check-config", "--config", &config], &[]));
        text.lines()
            .find(|line| line.starts_with("The console"))
            .unwrap_or_else(|| panic!("no console line in {text}"))
            .to_owned()
    };
    assert_eq!(
        console_line(""),
        "The console is served at http://127.0.0.1:4318/ui/ (sign-in: a name, no password \
         (loopback only))."
    );
    let open = console_line("[server]\nhttp_addr = \"0.0.0.0:4318\"\n");
    assert!(open.starts_with("The console is not served: "), "{open}");
    assert!(open.contains("without authentication"), "{open}");
    assert_eq!(
        console_line("[ui]\nenabled = false\n"),
        "The console is off (ui.enabled = false)."
    );
    // On a listener of its own beyond loopback, without users, check-config refuses.
    let config = write_config(dir.path(), "[ui]\nlisten_addr = \"0.0.0.0:4320\"\n");
    let refused = closedloop(&["check-config", "--config", &config], &[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("without authentication"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
