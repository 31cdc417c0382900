//! A seeded simulator of user sessions against the closedloop RAG example's HTTP API.
//!
//! Four personas exercise the feedback loop: satisfied users (ask, then thumbs up or copy),
//! thumbs-down users (ask something the help center answers poorly, then thumbs down with a
//! category), rephrasers (ask, then ask a paraphrase in the same session) and abandoners (ask
//! and leave). The same seed always produces the same sessions ([`plan`]); [`run`] sends them
//! and returns a [`Summary`].
//!
//! [`scenario`] simulates days of production traffic with a known truth (a regression, a new
//! topic, a signal that goes quiet) for the benchmarks of closedloop's estimates and monitors.
//!
//! # Example
//!
//! ```no_run
//! use closedloop_example_traffic::{run, SimConfig};
//!
//! # async fn demo() -> Result<(), closedloop_example_traffic::SimError> {
//! let config = SimConfig { sessions: 20, ..SimConfig::new("http://127.0.0.1:8080") };
//! let summary = run(&config).await?;
//! println!("{summary}");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod estimates;
pub mod monitors;
mod queries;
pub mod rephrase;
pub mod scenario;
mod sim;

pub use queries::{Topic, ANSWERABLE, EMERGING, UNANSWERABLE};
pub use sim::{
    default_seed, default_sessions, plan, run, Persona, PersonaMix, SessionPlan, SimConfig,
    SimError, Step, Summary,
};
