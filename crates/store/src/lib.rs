//! closedloop's store: the records the receiver keeps, on one of two engines.
//!
//! - **SQLite** (the default): one embedded file, for one receiver.
//! - **PostgreSQL**: one database shared by several receivers, each doing the whole job.
//!
//! All of closedloop's SQL lives in this crate. Statements are written once, in the SQL both
//! engines accept ([`db`](self) module docs say how), and no engine type appears in the
//! interface: errors are [`StoreError`].

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod codec;
mod config;
mod connection;
mod db;
mod error;
mod evalset;
mod failures;
mod feedback;
mod interner;
mod notifications;
mod outbox;
mod postgres;
mod prune;
pub mod records;
mod report;
mod responses;
mod review;
mod sessions;
mod sqlite;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod triage;
mod typed;

pub use config::{StoreConfig, StoreUrl, Synchronous};
pub use connection::{Access, Connection, Transaction};
pub use error::{Cause, Result, StoreError};
pub use sessions::Direction;

/// Which database engine a store runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// One embedded SQLite file (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several receivers may share.
    Postgres,
}

impl Engine {
    /// The engine's name, as in `[store] engine`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
