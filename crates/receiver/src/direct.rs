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

use rusqlite::{Connection, TransactionBehavior};

use crate::join::Tx;
use crate::records::SpanRef;
use crate::store::queries::Interner;
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

/// Opens the configured store for a command (on SQLite the file must exist); migrated.
pub(crate) fn connect(
    config: &crate::store::StoreConfig,
) -> Result<closedloop_store::Connection, closedloop_store::StoreError> {
    let config = closedloop_store::StoreConfig {
        path: config.path.clone(),
        ..closedloop_store::StoreConfig::default()
    };
    closedloop_store::Connection::open(&config, closedloop_store::Access::Command)
}

/// Opens (and migrates) an existing store file.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    Store::direct(path)
}

/// Runs `change` in one immediate transaction.
pub(crate) fn write<T>(
    conn: &mut Connection,
    settings: &DirectSettings,
    change: impl FnOnce(&mut Tx<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut interner = Interner::default();
    let mut effects = Effects::default();
    let value = {
        let mut w = Tx {
            conn: &tx,
            interner: &mut interner,
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

/// The receiver's span identity of a store record's.
pub(crate) fn span_ref(key: closedloop_store::records::SpanRef) -> SpanRef {
    SpanRef {
        trace_id: key.trace_id,
        span_id: key.span_id,
    }
}
