//! The SQLite store's size: used pages and WAL, as `store.max_size_mib` counts them.

use std::time::Duration;

use crate::db::Db;
use crate::error::{Result, StoreError};

/// The bytes of the database's used pages (free pages excluded): what deleting rows
/// shrinks. The store's size is this plus [`wal_bytes`]. 0 on another engine.
pub(crate) fn page_bytes(db: &mut Db) -> Result<u64> {
    let Db::Sqlite(conn) = db else {
        return Ok(0);
    };
    let pragma = |name: &str| -> Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .map_err(StoreError::sqlite)
    };
    let pages = pragma("page_count")?;
    let free = pragma("freelist_count")?;
    let size = pragma("page_size")?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The size of the connection's WAL file (0 for an in-memory database, no WAL, or another
/// engine).
pub(crate) fn wal_bytes(db: &Db) -> u64 {
    let Db::Sqlite(conn) = db else {
        return 0;
    };
    conn.path()
        .filter(|path| !path.is_empty())
        .and_then(|path| std::fs::metadata(format!("{path}-wal")).ok())
        .map_or(0, |metadata| metadata.len())
}

/// Frees every free page (`PRAGMA incremental_vacuum`, stepped to its end: a single step
/// frees one page only).
pub(crate) fn incremental_vacuum(db: &mut Db) -> Result<()> {
    let Db::Sqlite(conn) = db else {
        return Ok(());
    };
    let run = || -> rusqlite::Result<()> {
        let mut vacuum = conn.prepare_cached("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    };
    run().map_err(StoreError::sqlite)
}

/// Checkpoints and truncates the WAL, waiting `busy_timeout` at most for readers, then
/// restores the connection's usual busy timeout. A checkpoint readers keep from completing
/// is not an error.
pub(crate) fn checkpoint(db: &mut Db, busy_timeout: Duration) -> Result<()> {
    let Db::Sqlite(conn) = db else {
        return Ok(());
    };
    conn.busy_timeout(busy_timeout)
        .map_err(StoreError::sqlite)?;
    let result = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(StoreError::sqlite);
    conn.busy_timeout(super::BUSY_TIMEOUT)
        .map_err(StoreError::sqlite)?;
    result
}
