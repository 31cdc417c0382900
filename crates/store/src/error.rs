//! Why a store operation failed, without the engine's own error type.

use std::sync::Arc;

use crate::Engine;

/// The boxed cause of an engine error, shared so that one failed group commit can answer
/// every request in it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine reported an error.
    #[error("{engine} error: {cause}")]
    Engine {
        /// Which engine.
        engine: Engine,
        /// What it said.
        #[source]
        cause: Cause,
    },
    /// The transaction lost a race with another writer (a PostgreSQL serialization failure or
    /// deadlock, SQLite busy beyond its timeout). Nothing it wrote was kept; running the same
    /// transaction again is safe.
    #[error("{engine} transaction conflicted with another writer; retry it")]
    Conflict {
        /// Which engine.
        engine: Engine,
        /// What it said.
        #[source]
        cause: Cause,
    },
    /// The store directory could not be created.
    #[error("cannot create store directory")]
    CreateDir(#[source] Arc<std::io::Error>),
    /// The store was written by a newer closedloop.
    #[error("store schema version {found} is newer than this closedloop supports ({supported})")]
    TooNew {
        /// The version found in the store.
        found: i64,
        /// The newest version this closedloop knows.
        supported: i64,
    },
    /// A stored value does not have the type the query expects (a bug or a foreign write).
    #[error("column {column} holds {found}, expected {expected}")]
    Type {
        /// The column's position in the result.
        column: usize,
        /// What was there.
        found: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The store settings cannot be used.
    #[error("store settings: {0}")]
    Config(String),
    /// The engine's background writer has stopped.
    #[error("store writer stopped")]
    WriterStopped,
    /// The store's writer thread could not be started.
    #[error("cannot start store writer thread")]
    Spawn(#[source] Arc<std::io::Error>),
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at {target}: {cause}; {hint}")]
    Connect {
        /// Where (host, port, database and user; never the password).
        target: String,
        /// What to check.
        hint: &'static str,
        /// What the client said.
        #[source]
        cause: Cause,
    },
}

impl StoreError {
    /// Whether the engine refused a write for want of space (SQLite: the disk, or the file's
    /// page limit, is full).
    pub fn is_disk_full(&self) -> bool {
        let StoreError::Engine { cause, .. } = self else {
            return false;
        };
        cause
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
    }

    /// Whether running the same transaction again may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    pub(crate) fn sqlite(error: rusqlite::Error) -> Self {
        let busy = matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        let cause: Cause = Arc::new(error);
        if busy {
            StoreError::Conflict {
                engine: Engine::Sqlite,
                cause,
            }
        } else {
            StoreError::Engine {
                engine: Engine::Sqlite,
                cause,
            }
        }
    }

    pub(crate) fn postgres(error: postgres::Error) -> Self {
        let conflict = error.code().is_some_and(|code| {
            *code == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                || *code == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
        });
        let cause: Cause = Arc::new(PostgresError(error));
        if conflict {
            StoreError::Conflict {
                engine: Engine::Postgres,
                cause,
            }
        } else {
            StoreError::Engine {
                engine: Engine::Postgres,
                cause,
            }
        }
    }
}

/// A PostgreSQL client error that shows what the server said: the client's own message names
/// only the kind ("db error") and keeps the server's message as its source.
#[derive(Debug)]
pub(crate) struct PostgresError(pub(crate) postgres::Error);

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::error::Error as _;
        write!(f, "{}", self.0)?;
        if let Some(source) = self.0.source() {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

// The source is part of the message already.
impl std::error::Error for PostgresError {}

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
