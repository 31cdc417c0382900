//! The `closedloop` binary: see `closedloop --help`.

use std::io::IsTerminal as _;

use clap::Parser;
use closedloop_cli::cli::Cli;
use tracing_subscriber::EnvFilter;

/// Decoding an OTLP request allocates and frees many small buffers (every attribute key and
/// value) from the connection tasks of both cores; glibc's allocator spent about a quarter of
/// the decode side's time in `malloc` and `free` under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    purge_freed_memory_promptly();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
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

/// The mimalloc option that delays returning freed memory to the OS, in milliseconds.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Makes mimalloc return freed memory to the OS as it is freed.
///
/// mimalloc returns ("purges") freed pages `purge_delay` after the free (1 s by default), but
/// only when the thread that freed them allocates again: after a spike the idle runtime
/// workers kept the memory of the largest request resident indefinitely (a 1 MiB request of
/// empty attributes left 100 MiB; 30 MiB with the delay at 0). mimalloc reads its options from
/// the environment as the process starts, and setting one in-process is an `unsafe` FFI call,
/// so the binary sets `MIMALLOC_PURGE_DELAY=0` and executes itself again, once. A value set by
/// the caller is kept (and skips this).
#[cfg(unix)]
fn purge_freed_memory_promptly() {
    use std::os::unix::process::CommandExt as _;

    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` returns only when it failed; the receiver then runs with mimalloc's default.
    let _error = command.args(args).env(PURGE_DELAY_VAR, "0").exec();
}

#[cfg(not(unix))]
fn purge_freed_memory_promptly() {}
