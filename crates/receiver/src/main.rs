//! The `closedloop` binary: see `closedloop --help`.

use std::io::IsTerminal as _;

use clap::Parser;
use closedloop_receiver::cli::Cli;
use tracing_subscriber::EnvFilter;

/// Decoding an OTLP request allocates and frees many small buffers (every attribute key and
/// value) from the connection tasks of both cores; glibc's allocator spent about a quarter of
/// the decode side's time in `malloc` and `free` under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
