//! The `closedloop` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::edge::IngestToken;
use crate::serve::{Listeners, Receiver};

/// The environment variable holding the feedback token secret (never a flag: flags show up in
/// process listings).
const FEEDBACK_TOKEN_SECRET_ENV: &str = "CLOSEDLOOP_FEEDBACK_TOKEN_SECRET";

/// The environment variable holding the OTLP ingest token (never a flag, for the same reason).
const INGEST_TOKEN_ENV: &str = "CLOSEDLOOP_INGEST_TOKEN";

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
    Serve(ServeArgs),
    /// Checks the configuration file and prints the effective configuration.
    CheckConfig(ServeArgs),
    /// Exports failure records as an eval set (JSONL or CSV).
    Evalset {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::evalset::cli::EvalsetCommand,
    },
    /// The daily review sample: list, show, label.
    Review {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::review::cli::ReviewCommand,
    },
    /// Failure-record owners, statuses and due times: list, ack, resolve.
    Triage {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// What to do.
        #[command(subcommand)]
        command: crate::triage::cli::TriageCommand,
    },
    /// Failure rates per template version, version comparison, chunk lift, signals, trend.
    Report {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The report's options.
        #[command(flatten)]
        args: crate::report::cli::ReportArgs,
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

/// Overrides of the configuration file. Flags win over environment variables, which win over
/// the file.
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
    /// The OTLP/gRPC endpoint the receiver's own metrics go to (`telemetry.metrics_endpoint`).
    #[arg(long, env = "CLOSEDLOOP_METRICS_ENDPOINT", value_name = "URL")]
    pub metrics_endpoint: Option<String>,
}

impl ServeArgs {
    /// Applies the overrides to a configuration loaded from the file.
    pub fn apply(&self, config: &mut Config) {
        if let Some(addr) = self.grpc_addr {
            config.server.grpc_addr = addr;
        }
        if let Some(addr) = self.http_addr {
            config.server.http_addr = addr;
        }
        if let Some(path) = &self.store_path {
            config.store.path = path.clone();
        }
        if let Some(endpoint) = &self.export_endpoint {
            config.export.endpoint = Some(endpoint.clone());
        }
        if let Some(endpoint) = &self.metrics_endpoint {
            config.telemetry.metrics_endpoint = Some(endpoint.clone());
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
                println!("{config:#?}");
                Ok(())
            }
            Command::Evalset { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || crate::evalset::cli::run(&command, &config)).await
            }
            Command::Review { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || crate::review::cli::run(&command, &config)).await
            }
            Command::Triage { store, command } => {
                let config = self.load_config(&store.serve_args())?;
                let command = command.clone();
                blocking(move || crate::triage::cli::run(&command, &config)).await
            }
            Command::Report { store, args } => {
                let config = self.load_config(&store.serve_args())?;
                let args = args.clone();
                blocking(move || crate::report::cli::run(&args, &config)).await
            }
        }
    }

    /// The file (or the defaults), then the environment, then the flags.
    fn load_config(&self, args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(secret) = std::env::var_os(FEEDBACK_TOKEN_SECRET_ENV) {
            let secret = secret
                .into_string()
                .map_err(|_| anyhow::anyhow!("{FEEDBACK_TOKEN_SECRET_ENV} is not valid UTF-8"))?;
            config.feedback.token_secret = Some(secret);
        }
        if let Some(token) = std::env::var_os(INGEST_TOKEN_ENV) {
            let token = token
                .into_string()
                .map_err(|_| anyhow::anyhow!("{INGEST_TOKEN_ENV} is not valid UTF-8"))?;
            config.server.ingest_token = Some(
                IngestToken::new(token).with_context(|| format!("invalid {INGEST_TOKEN_ENV}"))?,
            );
        }
        args.apply(&mut config);
        Ok(config)
    }
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
    let listeners = Listeners::bind(&config.server)
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

    #[test]
    fn flags_override_the_file() {
        let cli = Cli::try_parse_from([
            "closedloop",
            "serve",
            "--grpc-addr",
            "127.0.0.1:9317",
            "--store-path",
            "/tmp/x.db",
            "--export-endpoint",
            "http://127.0.0.1:14317",
        ])
        .unwrap();
        let Command::Serve(args) = &cli.command else {
            panic!("expected serve");
        };
        let mut config = Config::from_toml(
            "[server]\ngrpc_addr = \"0.0.0.0:4317\"\nhttp_addr = \"0.0.0.0:4318\"\n",
        )
        .unwrap();
        args.apply(&mut config);
        assert_eq!(config.server.grpc_addr.to_string(), "127.0.0.1:9317");
        assert_eq!(config.server.http_addr.to_string(), "0.0.0.0:4318");
        assert_eq!(config.store.path, PathBuf::from("/tmp/x.db"));
        assert_eq!(
            config.export.endpoint.as_deref(),
            Some("http://127.0.0.1:14317")
        );
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
