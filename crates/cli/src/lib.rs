//! The `closedloop` command line: `closedloop serve` runs the receiver
//! ([`closedloop_receiver::Receiver`]); `check-config` prints the effective configuration; the
//! store commands (evalset, review, triage, report) parse their flags here and run the
//! library functions of `closedloop_receiver` over the store.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod cli;
pub mod evalset;
pub mod report;
pub mod review;
pub mod triage;
pub mod ui;
