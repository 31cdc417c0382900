//! The embedded SQLite store: one file in WAL mode, written by one thread.
//!
//! Every write goes through a bounded queue to a dedicated writer thread, which takes as many
//! queued commands as are waiting (up to `store.max_batch_records` records), applies them in one
//! transaction and answers each caller after the commit (group commit): callers await their
//! batch's commit, and a commit is shared by every request that arrived while the previous
//! one was being written. The queue is bounded in records (`store.max_queued_records`), so
//! memory stays bounded whatever the input rate: a full queue answers [`Rejected::Full`]
//! (the receiver's `IngestError::Overloaded`).
//!
//! The join of feedback to responses runs on the same thread, inside the same transactions,
//! so it never races with the writes it depends on. Readers (the exporter reading its
//! outbox) use their own connections, which WAL lets run beside the writer.

pub mod writer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use closedloop_store::records::PruneReport;
use closedloop_store::{Access, Connection};
use tokio::sync::oneshot;

pub use closedloop_store::{StoreConfig, StoreError, Synchronous};

use crate::counters::Shared;
use crate::detectors::DetectorsConfig;
use crate::join::{JoinConfig, Joiner};
use crate::lineage::Lineage;
use crate::records::{Feedback, Response, Retrieval, SpanRef};

/// The spans of one ingest request that the store keeps.
#[derive(Clone, Debug, Default)]
pub struct IngestBatch {
    /// The LLM response spans.
    pub responses: Vec<Response>,
    /// The retrieval spans.
    pub retrievals: Vec<Retrieval>,
    /// The feedback spans and events.
    pub feedback: Vec<Feedback>,
    /// The responses whose query fingerprint the receiver derived from their input messages
    /// (not given by the span): the query of a retrieval step of the same trace wins over it.
    pub derived_queries: HashSet<SpanRef>,
    /// Where each response span sits in the request (its parent and the ancestors the
    /// request holds), for the join's aliases and nested LLM spans (see [`crate::lineage`]).
    /// A response without an entry is read as a root span.
    pub lineage: Vec<Lineage>,
}

impl IngestBatch {
    /// Whether the batch holds nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.records() == 0
    }

    fn records(&self) -> usize {
        self.responses.len() + self.retrievals.len() + self.feedback.len()
    }
}

/// Whether a feedback item was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackWrite {
    /// The item was new and is stored.
    Recorded,
    /// An item with its feedback id was stored already.
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
pub enum Rejected {
    /// The queue holds `store.max_queued_records` records already.
    Full,
    /// The writer has stopped.
    Stopped,
}

/// The most commands (requests) waiting for the writer, whatever their size.
const MAX_QUEUED_COMMANDS: usize = 4096;

/// The handle to the store: cheap to share, sends commands to the writer thread.
#[derive(Debug)]
pub struct Store {
    commands: Mutex<Option<SyncSender<Command>>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creates, migrates) the store and starts its writer thread.
    pub fn open(
        config: &StoreConfig,
        join: &JoinConfig,
        detectors: &DetectorsConfig,
        shared: Arc<Shared>,
    ) -> Result<Store, StoreError> {
        let mut conn = Connection::open(config, Access::Writer)?;
        let pending_outbox = conn.outbox_len()?;
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
            .map_err(|error| StoreError::Spawn(error.into()))?;
        Ok(Store {
            commands: Mutex::new(Some(commands)),
            queued,
            max_queued: config.max_queued_records.max(1),
            thread: Mutex::new(Some(thread)),
        })
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
    pub fn ingest(
        &self,
        batch: IngestBatch,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Ingest { batch, reply }, true)?;
        Ok(receiver)
    }

    /// Queues one feedback item; resolves after its commit.
    pub fn feedback(
        &self,
        feedback: Feedback,
    ) -> Result<oneshot::Receiver<Result<FeedbackWrite, StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Feedback { feedback, reply }, true)?;
        Ok(receiver)
    }

    /// Deletes delivered outbox rows. Not subject to the queue bound: it frees space.
    pub fn outbox_sent(
        &self,
        ids: Vec<i64>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::OutboxSent { ids, reply }, false)?;
        Ok(receiver)
    }

    /// Runs retention pruning.
    pub fn prune(&self) -> Result<oneshot::Receiver<Result<PruneReport, StoreError>>, Rejected> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Prune { reply }, false)?;
        Ok(receiver)
    }

    /// Stops accepting commands; the writer commits what is queued and exits. Blocking: call
    /// from a blocking thread.
    pub fn close_blocking(&self) {
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
