//! closedloop's commands: what people do with the store once the receiver has filled it.
//!
//! Each module is one subject, a set of plain functions over a store
//! [`Connection`](closedloop_store::Connection). The `closedloop` CLI verbs and the console
//! call the same functions, so a label given in a browser and one given in a terminal go
//! through the same join and failure rules.
//!
//! - [`review`]: the uniform daily review sample and reviewers' labels;
//! - [`triage`]: failure records by owner and status, and status changes;
//! - [`report`]: the per-template-version comparison and chunk lift;
//! - [`evalset`]: eval cases grown from real queries.
//!
//! ```no_run
//! use closedloop_commands::triage::{self, ListFilter};
//! use closedloop_engine::direct;
//! use closedloop_store::StoreConfig;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = direct::connect(&StoreConfig::default())?;
//! let now_s = 1_767_225_600;
//! for item in triage::list(&mut conn, &ListFilter::new(now_s))? {
//!     println!("{} {:?}", item.id, item.owner);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod evalset;
pub mod report;
pub mod review;
pub mod triage;

use closedloop_delivery::export;
use closedloop_engine::{direct, join, store, timefmt, vocab};
use closedloop_store::records;
