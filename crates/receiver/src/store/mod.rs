//! The embedded SQLite store.

mod config;

pub use config::{StoreConfig, Synchronous};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
    /// The store directory could not be created.
    #[error("cannot create store directory")]
    CreateDir(#[source] std::io::Error),
    /// The store file was written by a newer receiver.
    #[error("store schema version {found} is newer than this receiver supports ({supported})")]
    TooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this receiver knows.
        supported: i64,
    },
    /// The writer thread has stopped.
    #[error("store writer stopped")]
    WriterStopped,
}
