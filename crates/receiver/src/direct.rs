//! Writes to the store from outside the receiver's writer thread: the `closedloop review
//! label` and `closedloop triage ack|resolve` commands.
//!
//! The CLI works on the store file whether a receiver is serving it or not. Rather than
//! starting a second pipeline (whose writer and join state would race the server's), a
//! command opens its own connection and makes its change in one `BEGIN IMMEDIATE`
//! transaction, running the same join and failure-rule code the writer thread runs, and
//! queues the resulting failure-record revision in the export outbox. SQLite serialises the
//! transaction with the server's group commits (WAL, busy timeout), the server keeps no
//! in-memory copy of what the command changes, and the server's exporter picks up outbox rows
//! written by other connections on its next pass (a stopped receiver exports them at its
//! next start).

use std::path::Path;

use closedloop_store::Connection;

use crate::join::Tx;
use crate::store::writer::{unix_now_s, Effects};
use crate::store::{Store, StoreError};
use crate::triage::{NotifyConfig, TriageConfig, TriageShared};

/// What a direct write needs to know of the receiver's configuration.
#[derive(Debug, Default)]
pub struct DirectSettings {
    /// Whether failure-record revisions are queued for export (an export endpoint is
    /// configured).
    pub export: bool,
    /// Whether content attributes are stored.
    pub store_content: bool,
    triage: TriageShared,
}

impl DirectSettings {
    /// Settings from the receiver's configuration sections.
    pub fn new(
        export: bool,
        store_content: bool,
        triage: &TriageConfig,
        notify: &NotifyConfig,
    ) -> Self {
        Self {
            export,
            store_content,
            triage: TriageShared::new(triage, notify),
        }
    }
}

/// Opens (and migrates) an existing store file, for statements run on SQLite itself.
pub(crate) fn open(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    Store::direct(path)
}

/// Opens (and migrates) an existing store file, for [`write`].
pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    Store::command(path)
}

/// Runs `change` in one immediate transaction.
pub(crate) fn write<T>(
    conn: &mut Connection,
    settings: &DirectSettings,
    change: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut tx = conn.transaction()?;
    let mut effects = Effects::default();
    let value = {
        let mut w = Tx {
            conn: &mut tx,
            now_s: unix_now_s(),
            store_content: settings.store_content,
            export: settings.export,
            effects: &mut effects,
            triage: &settings.triage,
        };
        change(&mut w)?
    };
    tx.commit()?;
    Ok(value)
}
