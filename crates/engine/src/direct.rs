//! Writes to the store from outside the receiver's writer thread: the `closedloop review
//! label` and `closedloop triage ack|resolve` commands.
//!
//! The CLI works on the configured store (`[store]`: the SQLite file or the PostgreSQL
//! database) whether a receiver is serving it or not. Rather than starting a second pipeline
//! (whose writer and join state would race the server's), a command opens its own
//! connection and makes its change in one write transaction, running the same join and
//! failure-rule code the writer thread runs, and queues the resulting failure-record revision
//! in the export outbox. The store serialises the transaction with the receivers' group
//! commits (on SQLite one writer at a time, with a busy timeout), no receiver keeps an
//! in-memory copy of what the command changes, and the exporters pick up outbox rows written by other connections on their next
//! pass (a stopped receiver exports them at its next start).

use closedloop_store::{Access, Connection, StoreConfig};

use std::time::{Duration, Instant};

use crate::detectors::DetectorsConfig;
use crate::join::{JoinConfig, Joiner, Tx};
use crate::records::Feedback;
use crate::store::writer::{unix_now_s, Effects};
use crate::store::StoreError;
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
    /// The configured detectors (`[detectors]`), whose thresholds judge the feedback a
    /// command writes.
    pub detectors: DetectorsConfig,
    /// The configured join (`[join]`), whose limits bound the join a command runs.
    pub join: JoinConfig,
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
            detectors: DetectorsConfig::default(),
            join: JoinConfig::default(),
        }
    }

    /// With the configured detectors (default: the defaults).
    pub fn with_detectors(mut self, detectors: &DetectorsConfig) -> Self {
        self.detectors = detectors.clone();
        self
    }

    /// With the configured join (default: the defaults).
    pub fn with_join(mut self, join: &JoinConfig) -> Self {
        self.join = join.clone();
        self
    }
}

/// Opens the configured store (`[store]`: the SQLite file, which must exist, or the
/// PostgreSQL database) for a command, migrated.
pub fn connect(config: &StoreConfig) -> Result<Connection, StoreError> {
    Connection::open(config, Access::Command)
}

/// Runs `change` in one immediate transaction.
pub fn write<T>(
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

/// Judges `feedback`, written by a command, in its transaction `w`: the engine's join with
/// the configured `[join]` and `[detectors]` settings, so the record it makes or revises is
/// the one the receiver would make. The record is written at once, enriched when the judged
/// response is stored (it normally is) and unenriched otherwise, rather than waiting for a
/// response span the command will not see. Its waiting room is its own (in memory, on every
/// engine), so it records this feedback only, never other receivers' waiting feedback; the
/// detectors that run on a timer (abandon) are the receiver's business and do not run here.
pub fn judge(
    w: &mut Tx<'_>,
    settings: &DirectSettings,
    feedback: Feedback,
) -> Result<(), StoreError> {
    let mut detectors = settings.detectors.clone();
    detectors.abandon.enabled = false;
    let join = JoinConfig {
        wait_secs: 0,
        ..settings.join.clone()
    };
    let mut joiner = Joiner::new(&join, &detectors).for_command();
    joiner.feedback(w, feedback)?;
    joiner.expire(w, Instant::now() + Duration::from_secs(1))
}
