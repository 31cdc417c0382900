//! closedloop's store: the records the receiver keeps, on one of two engines.
//!
//! - **SQLite** (the default): one embedded file, for one receiver.
//! - **PostgreSQL**: one database shared by several receivers, each doing the whole job.
//!
//! All of closedloop's SQL lives in this crate. Statements are written once, in the SQL both
//! engines accept ([`db`](self) module docs say how), and no engine type appears in the
//! interface: errors are [`StoreError`].
//!
//! # Tests
//!
//! The store's behaviour tests run on both engines: SQLite in a temporary directory, and
//! PostgreSQL in a fresh database per test on the server `CLOSEDLOOP_TEST_POSTGRES_URL`
//! names. Without it the PostgreSQL half is skipped (with a line on stderr), unless
//! `CLOSEDLOOP_TEST_REQUIRE_POSTGRES=1`, as in `scripts/test.sh`. To run them locally with a
//! throwaway server (PostgreSQL 15 from Debian):
//!
//! ```sh
//! eval "$(scripts/postgres.sh start /tmp/pg)"; cargo test -p closedloop-store
//! scripts/postgres.sh stop /tmp/pg
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[doc(hidden)]
pub mod bulk;
mod codec;
mod config;
mod connection;
mod content;
mod db;
mod error;
mod evalset;
mod failures;
mod feedback;
#[doc(hidden)]
pub mod inspect;
mod interner;
mod locks;
mod monitors;
mod notifications;
mod outbox;
mod overview;
mod postgres;
mod prune;
pub mod records;
mod report;
mod responses;
mod review;
mod sessions;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
mod triage;
mod typed;

pub use config::{ContentRetention, StoreConfig, StoreUrl, Synchronous};
pub use connection::{Access, Connection, Transaction};
pub use error::{Cause, Result, StoreError};
pub use locks::LockKey;
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
    /// Whether several receivers may write the store at once (PostgreSQL): the engine then
    /// keeps no state of the join in memory that another receiver would need, and takes
    /// locks ([`Connection::lock`]) around what two receivers could write together.
    pub fn is_shared(self) -> bool {
        self == Engine::Postgres
    }

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
