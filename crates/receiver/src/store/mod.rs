//! The embedded SQLite store: one file in WAL mode, written by one thread.
//!
//! Every write goes through a bounded queue to a dedicated writer thread, which takes as many
//! queued commands as are waiting (up to `store.max_batch_records` records), applies them in one
//! transaction and answers each caller after the commit (group commit): callers await their
//! batch's commit, and a commit is shared by every request that arrived while the previous
//! one was being written. The queue is bounded in records (`store.max_queued_records`), so
//! memory stays bounded whatever the input rate: a full queue answers
//! [`IngestError::Overloaded`](crate::IngestError::Overloaded).
//!
//! The join of feedback to responses runs on the same thread, inside the same transactions,
//! so it never races with the writes it depends on. Readers (the exporter reading its
//! outbox) use their own connections, which WAL lets run beside the writer.

pub(crate) mod codec;
mod config;
pub(crate) mod queries;
mod schema;
pub(crate) mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use config::{StoreConfig, Synchronous};
pub(crate) use queries::{OutboxRow, PruneReport};

use crate::detectors::DetectorsConfig;
use crate::join::{JoinConfig, Joiner};
use crate::pipeline::Shared;
use crate::records::{Feedback, Response, Retrieval};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
    /// A group commit failed; every request in it gets this error.
    #[error("store write failed")]
    Write(#[source] Arc<rusqlite::Error>),
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
    /// The writer thread could not be started.
    #[error("cannot start store writer thread")]
    Spawn(#[source] std::io::Error),
    /// The writer thread has stopped.
    #[error("store writer stopped")]
    WriterStopped,
}

/// The spans of one ingest request that the store keeps.
#[derive(Debug, Default)]
pub(crate) struct IngestBatch {
    pub(crate) responses: Vec<Response>,
    pub(crate) retrievals: Vec<Retrieval>,
    pub(crate) feedback: Vec<Feedback>,
}

impl IngestBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.records() == 0
    }

    fn records(&self) -> usize {
        self.responses.len() + self.retrievals.len() + self.feedback.len()
    }
}

/// Whether a feedback item was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FeedbackWrite {
    Recorded,
    Duplicate,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Ingest {
        batch: IngestBatch,
        reply: Reply<()>,
    },
    Feedback {
        feedback: Feedback,
        reply: Reply<FeedbackWrite>,
    },
    OutboxSent {
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    Prune {
        reply: Reply<PruneReport>,
    },
}

impl Command {
    fn records(&self) -> usize {
        match self {
            Command::Ingest { batch, .. } => batch.records(),
            Command::Feedback { .. } => 1,
            Command::OutboxSent { ids, .. } => ids.len(),
            Command::Prune { .. } => 1,
        }
    }
}

/// Why a command was not queued.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// The queue holds `store.max_queued_records` records already.
    Full,
    /// The writer has stopped.
    Stopped,
}

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// WAL pages after which the writer checkpoints (SQLite's default is 1000).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// The most commands (requests) waiting for the writer, whatever their size.
const MAX_QUEUED_COMMANDS: usize = 4096;

/// The handle to the store: cheap to share, sends commands to the writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    commands: Mutex<Option<SyncSender<Command>>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection with the settings every connection of the store uses.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
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

impl Store {
    /// Opens (creates, migrates) the store and starts its writer thread.
    pub(crate) fn open(
        config: &StoreConfig,
        join: &JoinConfig,
        detectors: &DetectorsConfig,
        shared: Arc<Shared>,
    ) -> Result<Store, StoreError> {
        if let Some(dir) = config
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(StoreError::CreateDir)?;
        }
        let mut conn = connect(&config.path, OpenFlags::default())?;
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
        schema::migrate(&mut conn)?;

        let pending_outbox = queries::outbox_len(&conn)?;
        shared
            .counters
            .export_pending
            .store(pending_outbox, Ordering::Relaxed);
        // The writer rebuilds the joiner's waiting room from the store in its first
        // transaction, which it runs at once.
        let joiner = Joiner::new(join, detectors);

        // The queue is bounded in records (in `send`); the channel bound only caps the number
        // of commands, and sizes the channel's preallocated buffer.
        let (commands, receiver) = mpsc::sync_channel(MAX_QUEUED_COMMANDS);
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = writer::Writer::new(conn, joiner, shared, Arc::clone(&queued), config.clone());
        let thread = std::thread::Builder::new()
            .name("closedloop-store".into())
            .spawn(move || worker.run(receiver))
            .map_err(StoreError::Spawn)?;
        Ok(Store {
            commands: Mutex::new(Some(commands)),
            queued,
            max_queued: config.max_queued_records.max(1),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Opens a read-write connection to an existing store file and brings its schema up to
    /// date, for commands that work on the store beside (or without) a running receiver.
    pub(crate) fn direct(path: &Path) -> Result<Connection, StoreError> {
        let mut conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Opens a read-only connection, for the exporter.
    pub(crate) fn reader(path: &Path) -> Result<Connection, StoreError> {
        connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    fn send(&self, command: Command, bounded: bool) -> Result<(), Rejected> {
        let records = command.records();
        if bounded {
            let before = self.queued.fetch_add(records, Ordering::AcqRel);
            if before > 0 && before + records > self.max_queued {
                self.queued.fetch_sub(records, Ordering::AcqRel);
                return Err(Rejected::Full);
            }
        } else {
            self.queued.fetch_add(records, Ordering::AcqRel);
        }
        let sender = self
            .commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let result = match sender {
            Some(sender) => match sender.try_send(command) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(Rejected::Full),
                Err(TrySendError::Disconnected(_)) => Err(Rejected::Stopped),
            },
            None => Err(Rejected::Stopped),
        };
        if result.is_err() {
            self.queued.fetch_sub(records, Ordering::AcqRel);
        }
        result
    }

    /// Queues the kept spans of one request; resolves after their commit.
    pub(crate) fn ingest(
        &self,
        batch: IngestBatch,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Ingest { batch, reply }, true)?;
        Ok(receiver)
    }

    /// Queues one feedback item; resolves after its commit.
    pub(crate) fn feedback(
        &self,
        feedback: Feedback,
    ) -> Result<oneshot::Receiver<Result<FeedbackWrite, StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Feedback { feedback, reply }, true)?;
        Ok(receiver)
    }

    /// Deletes delivered outbox rows. Not subject to the queue bound: it frees space.
    pub(crate) fn outbox_sent(
        &self,
        ids: Vec<i64>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::OutboxSent { ids, reply }, false)?;
        Ok(receiver)
    }

    /// Runs retention pruning.
    pub(crate) fn prune(
        &self,
    ) -> Result<oneshot::Receiver<Result<PruneReport, StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Prune { reply }, false)?;
        Ok(receiver)
    }

    /// Stops accepting commands; the writer commits what is queued and exits. Blocking: call
    /// from a blocking thread.
    pub(crate) fn close_blocking(&self) {
        drop(
            self.commands
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
