//! The `closedloop` binary: see `closedloop --help`.

use std::io::IsTerminal as _;

use clap::Parser;
use closedloop_receiver::cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr; `RUST_LOG` filters them (default `info`).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    Cli::parse().run().await
}
