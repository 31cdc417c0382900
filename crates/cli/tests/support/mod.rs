//! The fixtures of the `closedloop` binary's tests: the receiver's test fixtures
//! (`crates/receiver/tests/support`), the binary on ephemeral ports, and the command line run
//! in process.

// Each test crate compiles this module and uses a different part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

#[path = "../../../receiver/tests/support/mod.rs"]
mod shared;

pub use shared::*;

/// The real `closedloop` binary on ephemeral ports.
pub mod binary;

/// Runs `closedloop ARGS...` in process (as the binary would, minus the log setup).
pub async fn closedloop(args: &[&str]) -> anyhow::Result<()> {
    use clap::Parser as _;
    let argv = std::iter::once("closedloop").chain(args.iter().copied());
    closedloop_cli::cli::Cli::try_parse_from(argv)?.run().await
}
