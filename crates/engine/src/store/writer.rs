//! The writer thread: group commit of everything queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use closedloop_semconv::attribute::{
    FailureCategory, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
};
use closedloop_store::records::{PruneReport, PruneSettings};
use closedloop_store::Connection;
use tracing::{debug, error, info, warn};

use super::{Command, FeedbackWrite, StoreConfig, StoreError};
use crate::counters::Shared;
use crate::join::{self, Joiner, Tx};

pub(super) struct Writer {
    conn: Connection,
    joiner: Joiner,
    shared: Arc<Shared>,
    queued: Arc<AtomicUsize>,
    config: StoreConfig,
    /// When the joiner's in-memory state must be rebuilt from the store, at the start of a
    /// transaction: at startup, and after a failed commit (its rollback undid rows that
    /// state may describe). Cleared by the first commit that succeeds after it.
    reload_at: Option<Instant>,
}

/// How long after a failed commit the writer tries again on its own (rebuilding the
/// joiner's state and expiring what is due), when no request comes first.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// How many times a group commit runs when it keeps conflicting with other receivers'
/// transactions on a shared store (never on SQLite, which has one writer).
const MAX_CONFLICT_ATTEMPTS: u32 = 5;
/// The pause before running a conflicting group commit again, times the attempt.
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);

/// How long a checkpoint waits for readers on older snapshots.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// What one command produced, answered after the commit.
enum Done {
    Unit,
    Feedback(FeedbackWrite),
    Prune(PruneReport),
}

/// Seconds since the Unix epoch, now (0 before it).
pub fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        joiner: Joiner,
        shared: Arc<Shared>,
        queued: Arc<AtomicUsize>,
        config: StoreConfig,
    ) -> Self {
        Self {
            conn,
            joiner,
            shared,
            queued,
            config,
            reload_at: Some(Instant::now()),
        }
    }

    pub(super) fn run(mut self, receiver: Receiver<Command>) {
        let mut batch: Vec<Command> = Vec::new();
        let mut open = true;
        while open {
            // Block for the first command, or until the oldest waiting feedback expires, or
            // until the joiner's state must be rebuilt.
            let deadline = match (self.joiner.next_deadline(), self.reload_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match deadline {
                Some(deadline) => {
                    match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            open = false;
                            None
                        }
                    }
                }
                None => match receiver.recv() {
                    Ok(command) => Some(command),
                    Err(_) => {
                        open = false;
                        None
                    }
                },
            };
            let mut records = 0;
            if let Some(command) = first {
                records += command.records();
                batch.push(command);
                while records < self.config.max_batch_records {
                    match receiver.try_recv() {
                        Ok(command) => {
                            records += command.records();
                            batch.push(command);
                        }
                        Err(_) => break,
                    }
                }
            }
            // On the way out, the joiner still expires what is due: shutdown flushes.
            self.commit(&mut batch);
            self.queued.fetch_sub(records, Ordering::AcqRel);
        }
        // Read connections may close after this one, and SQLite leaves the WAL in place
        // when the last connection to close is read-only: the writer truncates it itself,
        // so a stopped store is one file of data, not data plus old copies of its pages.
        self.checkpoint();
        info!("Store writer stopped.");
    }

    /// Applies `batch` (possibly empty: an expiry tick) in one transaction and answers
    /// every command in it.
    fn commit(&mut self, batch: &mut Vec<Command>) {
        let started = Instant::now();
        let mut effects = Effects::default();
        let max_bytes = self.config.max_size_mib.saturating_mul(1 << 20);
        let prunes = batch
            .iter()
            .any(|command| matches!(command, Command::Prune { .. }));
        // The WAL counts against `store.max_size_mib`: once it holds a tenth of the limit, a
        // prune first moves it into the database, so what is measured is data, not old
        // copies of pages.
        if prunes && self.conn.wal_bytes() > max_bytes / 10 {
            self.checkpoint();
        }
        let mut result = self.apply(batch, &mut effects);
        // On a shared store, two receivers' transactions can deadlock over their locks (or
        // fail to serialize): PostgreSQL aborts one, which loses nothing, and it runs again.
        // SQLite has one writer (and its batches are consumed by their first attempt): a busy
        // store there is an error for the callers, as before.
        let shared = self.conn.engine().is_shared();
        let mut attempt = 1;
        while shared
            && attempt < MAX_CONFLICT_ATTEMPTS
            && result.as_ref().is_err_and(StoreError::is_conflict)
        {
            debug!(
                attempt,
                "Group commit conflicted with another receiver; running it again."
            );
            std::thread::sleep(CONFLICT_PAUSE.saturating_mul(attempt));
            effects = Effects::default();
            result = self.apply(batch, &mut effects);
            attempt += 1;
        }
        let count = batch.len();
        match result {
            Ok(done) => {
                self.reload_at = None;
                let counters = &self.shared.counters;
                counters
                    .feedback_recorded
                    .fetch_add(effects.feedback_recorded.len() as u64, Ordering::Relaxed);
                for &(signal, kind, source) in &effects.feedback_recorded {
                    counters.feedback_by.add(signal, kind, source);
                }
                counters
                    .failure_records
                    .fetch_add(effects.failure_records.len() as u64, Ordering::Relaxed);
                for &(category, stage) in &effects.failure_records {
                    counters.failure_records_by.add(category, stage);
                }
                counters
                    .export_pending
                    .fetch_add(effects.outbox_added, Ordering::Relaxed);
                if effects.outbox_deleted > 0 {
                    let _ = counters.export_pending.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |pending| Some(pending.saturating_sub(effects.outbox_deleted)),
                    );
                }
                if effects.outbox_added > 0 {
                    // One exporter per sink waits on it; the permit is for one that is not
                    // waiting yet.
                    self.shared.export_wake.notify_waiters();
                    self.shared.export_wake.notify_one();
                }
                if effects.notifications_added > 0 {
                    self.shared.triage.wake.notify_one();
                }
                for done in &done {
                    let Done::Prune(report) = done else { continue };
                    if report.over_size > 0 {
                        warn!(
                            used_bytes = report.used_bytes,
                            max_bytes,
                            deleted_rows = report.over_size,
                            outbox = report.outbox,
                            notifications = report.notifications,
                            failures = report.failures,
                            responses = report.responses,
                            feedback = report.feedback,
                            "Store over its size limit; deleted its oldest rows."
                        );
                    }
                    if report.over_size > 0 {
                        // Gives the deleted pages (and the WAL) back to the file system.
                        // Rows deleted by age alone leave free pages that new rows reuse.
                        self.checkpoint();
                    }
                }
                for (command, done) in batch.drain(..).zip(done) {
                    answer(command, Ok(done));
                }
                if count > 0 {
                    debug!(
                        commands = count,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "Group commit done."
                    );
                }
            }
            Err(error) => {
                error!(%error, commands = count, "Group commit failed; rolled back.");
                // In-memory state may describe rows that were rolled back: the connection's
                // interner forgot its ids in the rollback, and the joiner is rebuilt from the
                // store at the start of the next transaction (which retries until one
                // commits), so waiting feedback is never forgotten.
                self.reload_at = Some(Instant::now() + RELOAD_RETRY);
                for command in batch.drain(..) {
                    answer(command, Err(error.clone()));
                }
            }
        }
    }

    /// Checkpoints and truncates the WAL. A reader still on an older snapshot would make it
    /// wait: the writer waits briefly, not the usual busy timeout, and a checkpoint left
    /// undone is tried again at the next prune.
    fn checkpoint(&mut self) {
        if let Err(error) = self.conn.checkpoint(CHECKPOINT_BUSY_TIMEOUT) {
            warn!(%error, "Cannot checkpoint the store's WAL.");
        }
    }

    fn apply(
        &mut self,
        batch: &mut [Command],
        effects: &mut Effects,
    ) -> Result<Vec<Done>, StoreError> {
        let now_s = unix_now_s();
        let mut tx = self.conn.transaction()?;
        let mut done = Vec::with_capacity(batch.len());
        {
            let mut w = Tx {
                conn: &mut tx,
                now_s,
                store_content: self.config.store_content,
                export: self.shared.export_enabled,
                effects,
                triage: &self.shared.triage,
            };
            let shared = w.conn.engine().is_shared();
            if shared {
                let mut keys = Vec::new();
                for command in batch.iter() {
                    match command {
                        Command::Ingest { batch, .. } => join::batch_keys(batch, &mut keys),
                        Command::Feedback { feedback, .. } => join::item_keys(feedback, &mut keys),
                        Command::OutboxSent { .. } | Command::Prune { .. } => {}
                    }
                }
                w.conn.lock(keys)?;
            }
            if self.reload_at.is_some() {
                self.joiner.reload(&mut w)?;
            }
            for command in batch.iter_mut() {
                done.push(match command {
                    Command::Ingest { batch, .. } => {
                        // A shared store's batch may run again (a conflict): it keeps its
                        // copy. On SQLite it runs once.
                        let batch = if shared {
                            batch.clone()
                        } else {
                            std::mem::take(batch)
                        };
                        self.joiner.ingest(&mut w, batch)?;
                        Done::Unit
                    }
                    Command::Feedback { feedback, .. } => {
                        let feedback = feedback.clone();
                        Done::Feedback(self.joiner.feedback(&mut w, feedback)?)
                    }
                    Command::OutboxSent { ids, .. } => {
                        w.effects.outbox_deleted += w.conn.delete_outbox(ids)?;
                        Done::Unit
                    }
                    Command::Prune { .. } => {
                        let cutoff = now_s.saturating_sub(self.config.retention_secs as i64);
                        let max_bytes = self.config.max_size_mib.saturating_mul(1 << 20);
                        let report = w.conn.prune(&PruneSettings {
                            cutoff_s: cutoff,
                            max_bytes,
                        })?;
                        w.effects.outbox_deleted += report.outbox;
                        Done::Prune(report)
                    }
                });
            }
            self.joiner.expire(&mut w, Instant::now())?;
        }
        tx.commit()?;
        Ok(done)
    }
}

/// Side effects of a transaction, applied to the shared counters after its commit.
#[derive(Debug, Default)]
pub struct Effects {
    /// Feedback stored, as (signal, kind, source).
    pub feedback_recorded: Vec<(FeedbackSignal, FeedbackKind, FeedbackSource)>,
    /// Failure records created, as (category, stage).
    pub failure_records: Vec<(FailureCategory, FailureStage)>,
    /// Outbox rows added.
    pub outbox_added: usize,
    /// Outbox rows deleted (delivered or pruned).
    pub outbox_deleted: usize,
    /// Webhook notifications queued (see `crate::triage`).
    pub notifications_added: usize,
}

fn answer(command: Command, result: Result<Done, StoreError>) {
    // A caller that went away (cancelled request) no longer needs the answer.
    match command {
        Command::Ingest { reply, .. } | Command::OutboxSent { reply, .. } => {
            let _ = reply.send(result.map(|_| ()));
        }
        Command::Feedback { reply, .. } => {
            let _ = reply.send(result.map(|done| match done {
                Done::Feedback(write) => write,
                _ => FeedbackWrite::Recorded,
            }));
        }
        Command::Prune { reply, .. } => {
            let _ = reply.send(result.map(|done| match done {
                Done::Prune(report) => report,
                _ => PruneReport::default(),
            }));
        }
    }
}

#[cfg(test)]
mod tests;
