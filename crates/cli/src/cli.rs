//! The `closedloop` command line.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};

use closedloop_receiver::ExportProtocol;
use closedloop_receiver::{Config, ConfigError, EnvironmentError, Flags};
use closedloop_receiver::{Listeners, Receiver};

/// How the settings' sources rank, for `--help`; the `config` module documents the rule.
const PRECEDENCE: &str = "Precedence, for every setting with more than one source: a flag \
(or the CLOSEDLOOP_* variable bound to it), then the other environment variables \
(OTEL_EXPORTER_OTLP_*, CLOSEDLOOP_FEEDBACK_TOKEN_SECRET, CLOSEDLOOP_INGEST_TOKEN), then the configuration file, then \
the defaults. `closedloop check-config` prints the effective configuration.";

/// closedloop: feedback for LLM and RAG systems, joined to the spans it judges.
#[derive(Debug, Parser)]
#[command(name = "closedloop", version, about, long_about = None)]
pub struct Cli {
    /// The TOML configuration file (see closedloop.example.toml). Without one, the defaults
    /// apply.
    #[arg(
        long,
        short = 'c',
        env = "CLOSEDLOOP_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Runs the receiver: OTLP in (gRPC and HTTP), feedback API, failure records out.
    #[command(after_help = PRECEDENCE)]
    Serve(ServeArgs),
    /// Checks the configuration as `serve` would and prints the effective configuration
    /// (file, environment and flags merged; secrets redacted).
    #[command(after_help = PRECEDENCE)]
    CheckConfig(ServeArgs),
    /// Exports failure records as an eval set (JSONL or CSV).
    Evalset {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::evalset::EvalsetCommand,
    },
    /// The daily review sample: list, show, label.
    Review {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::review::ReviewCommand,
    },
    /// Failure-record owners, statuses and due times: list, ack, resolve.
    Triage {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::triage::TriageCommand,
    },
    /// Failure rates per template version, version comparison, chunk lift, signals, trend.
    Report {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The report's options.
        #[command(flatten)]
        args: crate::report::ReportArgs,
    },
    /// Helpers for the web console's configuration: hash-password.
    Ui {
        /// What to do.
        #[command(subcommand)]
        command: crate::ui::UiCommand,
    },
}

/// The store the evalset, review, triage and report commands work on. They open the store
/// file directly, whether or not a receiver is serving it.
#[derive(Clone, Debug, Default, Args)]
pub struct StoreArgs {
    /// The SQLite store file (`store.path`).
    #[arg(
        long,
        env = "CLOSEDLOOP_STORE_PATH",
        value_name = "FILE",
        global = true
    )]
    pub store_path: Option<PathBuf>,
    /// The OTLP endpoint failure records are exported to (`export.endpoint`): label, ack and
    /// resolve queue their new revision for export when one is configured.
    #[arg(
        long,
        env = "CLOSEDLOOP_EXPORT_ENDPOINT",
        value_name = "URL",
        global = true
    )]
    pub export_endpoint: Option<String>,
}

impl StoreArgs {
    fn serve_args(&self) -> ServeArgs {
        ServeArgs {
            store_path: self.store_path.clone(),
            export_endpoint: self.export_endpoint.clone(),
            ..ServeArgs::default()
        }
    }
}

/// The settings the command line gives, over the environment and the file (see
/// `Config::layer`, which takes them as [`Flags`]). Each flag's `CLOSEDLOOP_*` variable
/// stands for it when it is absent.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// The OTLP/gRPC listen address (`server.grpc_addr`).
    #[arg(long, env = "CLOSEDLOOP_GRPC_ADDR", value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// The HTTP listen address: OTLP/HTTP, feedback API, health (`server.http_addr`).
    #[arg(long, env = "CLOSEDLOOP_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The SQLite store file (`store.path`).
    #[arg(long, env = "CLOSEDLOOP_STORE_PATH", value_name = "FILE")]
    pub store_path: Option<PathBuf>,
    /// The OTLP endpoint failure records are exported to (`export.endpoint`).
    #[arg(long, env = "CLOSEDLOOP_EXPORT_ENDPOINT", value_name = "URL")]
    pub export_endpoint: Option<String>,
    /// The OTLP transport failure records are exported with (`export.protocol`; default
    /// http/protobuf).
    #[arg(
        long,
        env = "CLOSEDLOOP_EXPORT_PROTOCOL",
        value_name = "PROTOCOL",
        value_parser = PossibleValuesParser::new(["grpc", "http/protobuf"])
            .try_map(|text| text.parse::<ExportProtocol>())
    )]
    pub export_protocol: Option<ExportProtocol>,
    /// The OTLP/gRPC endpoint the receiver's own metrics go to (`telemetry.metrics_endpoint`).
    #[arg(long, env = "CLOSEDLOOP_METRICS_ENDPOINT", value_name = "URL")]
    pub metrics_endpoint: Option<String>,
}

impl ServeArgs {
    /// The flags' values, for [`Config::layer`].
    pub fn flags(&self) -> Flags {
        Flags {
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            store_path: self.store_path.clone(),
            export_endpoint: self.export_endpoint.clone(),
            export_protocol: self.export_protocol,
            metrics_endpoint: self.metrics_endpoint.clone(),
        }
    }
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match &self.command {
            Command::Serve(args) => {
                let config = self.load_config(args)?;
                serve(config).await
            }
            Command::CheckConfig(args) => {
                let config = self.load_config(args)?;
                printing(|out| check_config(&config, out))
            }
            Command::Evalset { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || printing(|out| crate::evalset::run(&command, &config, out))).await
            }
            Command::Review { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || printing(|out| crate::review::run(&command, &config, out))).await
            }
            Command::Triage { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || printing(|out| crate::triage::run(&command, &config, out))).await
            }
            Command::Report { store, args } => {
                let config = self.load_config(&store.serve_args())?;
                let args = args.clone();
                blocking(move || printing(|out| crate::report::run(&args, &config, out))).await
            }
            Command::Ui { command } => {
                let command = command.clone();
                blocking(move || {
                    printing(|out| crate::ui::run(&command, &mut io::stdin().lock(), out))
                })
                .await
            }
        }
    }

    /// The effective configuration: the file (or the defaults) under the environment under
    /// the flags, validated.
    fn load_config(&self, args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let env = environment()?;
        config.layer(&args.flags(), &|name| env.get(name).cloned())?;
        config.validate()?;
        Ok(config)
    }
}

/// The variables of the process environment `Config::layer` reads (the flags' own
/// `CLOSEDLOOP_*` variables are clap's), which must be valid UTF-8.
fn environment() -> Result<HashMap<String, String>, ConfigError> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            (name == closedloop_receiver::FEEDBACK_TOKEN_SECRET_ENV
                || name == closedloop_receiver::INGEST_TOKEN_ENV
                || name == closedloop_receiver::STORE_URL_ENV
                || name.starts_with("OTEL_EXPORTER_OTLP_"))
            .then_some((name, value))
        })
        .map(|(name, value)| match value.into_string() {
            Ok(value) => Ok((name, value)),
            Err(_) => Err(ConfigError::Environment {
                variable: name,
                source: EnvironmentError::NotUnicode,
            }),
        })
        .collect()
}

/// `closedloop check-config`: the effective configuration (its `Debug` form, in which every
/// `Secret` is redacted) and where failure records go.
fn check_config(config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{config:#?}")?;
    match config.export.resolve()? {
        Some(target) => writeln!(
            out,
            "Failure records are exported over {} to {}.",
            target.protocol.as_str(),
            target.endpoint
        )?,
        None => writeln!(
            out,
            "Failure records are stored, not exported (no endpoint)."
        )?,
    }
    match config.ui_addr() {
        Some(addr) => match config.ui.check_exposure(addr) {
            Ok(()) => writeln!(
                out,
                "The console is served at http://{addr}/ui/ (sign-in: {}).",
                config.ui.sign_in()
            )?,
            Err(error) => writeln!(out, "The console is not served: {error}.")?,
        },
        None => writeln!(out, "The console is off (ui.enabled = false).")?,
    }
    Ok(())
}

/// Runs a command that prints to standard output through a locked handle. When the reader of
/// a pipe goes away (`closedloop triage list | head -1`), the command ends there, quietly and
/// successfully, as `head` asked; any other error is the command's.
fn printing(command: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut out = Stdout(io::stdout().lock());
    let result = command(&mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Err(error) if is_closed_stdout(&error) => Ok(()),
        result => result,
    }
}

/// Standard output whose broken-pipe errors carry [`StdoutClosed`], so they can be told from a
/// broken pipe anywhere else.
struct Stdout(io::StdoutLock<'static>);

/// Standard output's reader went away.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
struct StdoutClosed;

impl Stdout {
    fn mark(error: io::Error) -> io::Error {
        if error.kind() == io::ErrorKind::BrokenPipe {
            io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
        } else {
            error
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(Self::mark)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(Self::mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(Self::mark)
    }
}

fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// Runs a store command on a blocking thread (SQLite never runs on the async runtime).
async fn blocking(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .context("command thread failed")?
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config)
        .await
        .context("failed to bind the listen addresses")?;
    Receiver::builder(config)
        .build()
        .serve(listeners, shutdown_signal())
        .await
        .context("receiver failed")
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "Cannot listen for Ctrl-C.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(std::iter::once("closedloop").chain(argv.iter().copied())).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        args
    }

    #[test]
    fn flags_override_the_file() {
        let args = serve_args(&[
            "serve",
            "--grpc-addr",
            "127.0.0.1:9317",
            "--store-path",
            "/tmp/x.db",
            "--export-endpoint",
            "http://127.0.0.1:14317",
            "--export-protocol",
            "grpc",
        ]);
        let mut config = Config::from_toml(
            "[server]\ngrpc_addr = \"0.0.0.0:4317\"\nhttp_addr = \"0.0.0.0:4318\"\n",
        )
        .unwrap();
        config.layer(&args.flags(), &|_| None).unwrap();
        assert_eq!(config.server.grpc_addr.to_string(), "127.0.0.1:9317");
        assert_eq!(config.server.http_addr.to_string(), "0.0.0.0:4318");
        assert_eq!(config.store.path, PathBuf::from("/tmp/x.db"));
        assert_eq!(
            config.export.endpoint.as_deref(),
            Some("http://127.0.0.1:14317")
        );
        assert_eq!(config.export.protocol, Some(ExportProtocol::Grpc));
    }

    #[test]
    fn export_flags_override_the_otel_variables() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://env:4318".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
            _ => None,
        };
        let args = serve_args(&[
            "serve",
            "--export-endpoint",
            "http://flag:4317",
            "--export-protocol",
            "grpc",
        ]);
        let mut config = Config::default();
        config.layer(&args.flags(), &env).unwrap();
        let target = config.export.resolve().unwrap().unwrap();
        assert_eq!(target.endpoint, "http://flag:4317");
        assert_eq!(target.protocol, ExportProtocol::Grpc);
    }

    #[test]
    fn the_secret_variable_overrides_the_file() {
        let mut config = Config::from_toml("[feedback]\ntoken_secret = \"from-file\"\n").unwrap();
        let env = |name: &str| {
            (name == closedloop_receiver::FEEDBACK_TOKEN_SECRET_ENV).then(|| "from-env".to_owned())
        };
        config.layer(&Flags::default(), &env).unwrap();
        assert_eq!(config.feedback.token_secret.as_deref(), Some("from-env"));
    }

    #[test]
    fn serve_help_states_the_precedence() {
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("OTEL_EXPORTER_OTLP_*"), "{help}");
        assert!(help.contains("--export-protocol"), "{help}");
    }

    #[test]
    fn a_closed_stdout_is_told_from_other_errors() {
        let closed = anyhow::Error::new(Stdout::mark(io::ErrorKind::BrokenPipe.into()))
            .context("cannot print");
        assert!(is_closed_stdout(&closed));
        let other_pipe = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_closed_stdout(&other_pipe));
        let other = anyhow::Error::new(Stdout::mark(io::ErrorKind::PermissionDenied.into()));
        assert!(!is_closed_stdout(&other));
    }

    #[test]
    fn store_flags_go_before_or_after_the_subcommand() {
        for argv in [
            ["closedloop", "triage", "--store-path", "/tmp/s.db", "list"],
            ["closedloop", "triage", "list", "--store-path", "/tmp/s.db"],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Command::Triage { store, .. } = &cli.command else {
                panic!("expected triage");
            };
            assert_eq!(
                store.store_path,
                Some(PathBuf::from("/tmp/s.db")),
                "{argv:?}"
            );
        }
    }
}
