//! The SQLite engine: one file in WAL mode, embedded, written by one connection at a time.

pub(crate) mod schema;
pub(crate) mod size;

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::config::{StoreConfig, Synchronous};
use crate::connection::Access;
use crate::error::{Result, StoreError};

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// WAL pages after which the writer checkpoints (SQLite's default is 1000).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection with the settings every connection of the store uses.
fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Without the query planner stability guarantee, SQLite (built with STAT4) marks cached
    // statements whose plan might depend on a bound value (the detectors' range scans over
    // the session index) for re-preparation at every new binding: parsing and planning the
    // statement again on every execution cost the writer most of its time. The plans chosen
    // without statistics are the ones wanted anyway.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Opens the file at `path` as it is (for inspection): read-only unless `writable`.
pub(crate) fn open_file(path: &Path, writable: bool) -> Result<Connection> {
    let flags = if writable {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    connect(path, flags).map_err(StoreError::sqlite)
}

/// Opens the store file at `config.path` for `access`.
pub(crate) fn open(config: &StoreConfig, access: Access) -> Result<Connection> {
    match access {
        Access::Writer => open_writer(config),
        Access::Command => {
            let mut conn = connect(&config.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(StoreError::sqlite)?;
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                .map_err(StoreError::sqlite)?;
            schema::migrate(&mut conn)?;
            Ok(conn)
        }
        Access::Reader => connect(
            &config.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sqlite),
    }
}

fn open_writer(config: &StoreConfig) -> Result<Connection> {
    if let Some(dir) = config
        .path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::CreateDir(error.into()))?;
    }
    let mut conn = writer_settings(config).map_err(StoreError::sqlite)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

fn writer_settings(config: &StoreConfig) -> rusqlite::Result<Connection> {
    let conn = connect(&config.path, OpenFlags::default())?;
    // Must precede the first table; a no-op on an existing file.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(
        None,
        "synchronous",
        match config.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", false)?;
    // Random-keyed indexes (trace and span ids, feedback ids) touch a different page per
    // row: SQLite's default 2 MiB page cache makes each insert re-read pages it wrote a
    // moment ago. A bigger cache and fewer, larger checkpoints keep hot pages in memory
    // and let repeated writes to a page between checkpoints coalesce.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB.wrapping_neg())?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(conn)
}
