//! Matching feedback to the response it judges, and keeping failure records.
//!
//! Feedback finds its response span through its span link (from the feedback API: the trace
//! and span ids its token vouches for). Only feedback that names no span falls back to
//! `gen_ai.response.id`: feedback that names a span joins a response of that span's trace or
//! none, so a token for one answer cannot file feedback on another trace's answer by naming
//! its response id.
//!
//! # Feedback naming any span of a request
//!
//! An auto-instrumented application (FastAPI with OpenInference, say) holds its own request
//! span, not the LLM span beneath it, so its feedback names the HTTP server span or a chain
//! span. The span S that feedback names resolves, in this order, to:
//!
//! 1. the response whose span S is;
//! 2. the response S is an alias of: the response S *produced*, the last-ending LLM response
//!    beneath S among the spans of the request that carried them both (the receiver sees a
//!    request's spans at once; see [`crate::lineage`]), or the response a nested LLM span S
//!    was folded into;
//! 3. else nothing yet: the feedback waits (`join.wait_secs`, as feedback that arrives before
//!    its response always has), and each request that brings responses or aliases of the
//!    trace tries rules 1 and 2 again: S may still arrive, as an answer of its own or above
//!    one;
//! 4. when the wait ends, the last-ending response stored for S's trace: a span the receiver
//!    never saw above an answer resolves to the trace's last answer. Only then, so that
//!    feedback naming an LLM span that has not arrived yet never lands on another answer of
//!    its trace. Without any response in the trace the record is written unenriched.
//!
//! The same holds for the feedback API, whose token names a span. A failure record is keyed
//! by the response's span whichever span its feedback named.
//!
//! # Nested LLM spans are one response
//!
//! LlamaIndex with OpenInference emits an LLM span (`predict`) with a child LLM span (the
//! chat call). An LLM span beneath another LLM span is the same call, and is kept as ONE
//! response row: within one request the inner one (filled with the details it lacks from the
//! enclosing one); across requests whichever was stored first, found through the parent span
//! id each response keeps (the arriving span's parent is a stored response, or a stored
//! response's parent is the arriving span). The stored row gets the details it lacks from the
//! other span (template, model, session, data source, chunk ids, fingerprint, response id),
//! its failure record, if it has one, a new revision with them, and the other span becomes
//! an alias of it: feedback on either joins the same record, and the report counts one
//! response.
//!
//! Ingest stays cheap: a plain span (neither response, retrieval nor feedback) costs no store
//! lookup; each response costs at most two (its parent, and a response under it), and aliases
//! are written only for the ancestors of responses in the same request. On a store several
//! receivers share, a batch takes the lock of each trace it brings responses of or names in
//! feedback ([`LockKey::trace`]), so trace-level resolution and folding never race.
//!
//! Negative feedback creates or updates THE failure record of its response (one per failing
//! response, keyed by the judged span's ids); positive feedback is stored and creates nothing.
//! See [`crate::rules`] for how a record's category, stage and severity are decided.
//!
//! Batches arrive out of order, so feedback may arrive before its response span. It then
//! waits, bounded in time (`join.wait_secs`) and in count (`join.max_pending`): when the
//! response span arrives in time, the record is written enriched with the response's
//! template, chunks, model and data source; when the window passes (or the waiting room is
//! full and it is the oldest), the record is written unenriched
//! (`closedloop.failure.enriched` = false). Waiting feedback is stored (state "waiting") before
//! the request that carried it is acknowledged. The waiting room is rebuilt from the store at
//! startup and after a failed commit, inside the next transaction (so a rebuild that fails is
//! retried with the one after); feedback whose response is stored by then is joined,
//! enriched, during the rebuild instead of waiting again.
//!
//! OpenInference and OpenLLMetry put chunk ids on the retriever span, not on the LLM span.
//! The joiner remembers the retrieval steps of recent traces (`join.max_retrieval_traces`), and
//! an LLM span without `closedloop.context.chunk_ids` takes the chunk ids of the last
//! retrieval, rerank or filter step of its trace that ended before it started. Likewise the
//! query: an LLM span whose query fingerprint was not given (none, or derived by the receiver
//! from its input messages, where a RAG prompt holds the retrieved context too) takes the
//! query of the last retrieval step of its trace that carried one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use closedloop_store::records::{FailureRow, FeedbackState, RevisionCause};
use closedloop_store::{Connection, LockKey, StoreError};
use serde::Deserialize;

use crate::detectors::{Detectors, DetectorsConfig};
use crate::failure_span::{failure_span, FailureSpan};
use crate::lineage::{self, Planned};
use crate::records::{Feedback, Response, Retrieval, SpanId, SpanRef, TraceId};
use crate::rules::{self, Context};
use crate::store::writer::Effects;
use crate::store::{FeedbackWrite, IngestBatch};
use crate::triage::{self, TriageShared};
use crate::vocab::TriageStatus;

/// The `[join]` section: how long and how much feedback may wait for its response span.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// How long feedback whose response span has not arrived yet waits for it, in seconds.
    /// After that the failure record is written unenriched (`closedloop.failure.enriched` =
    /// false). Default 30.
    #[serde(default = "default_wait_secs")]
    pub wait_secs: u64,
    /// The most feedback items waiting for their response span at once. When full, the
    /// oldest waiting item is recorded unenriched at once. Default 10000.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// The most traces whose retrieval results are remembered so that a later LLM span of the
    /// same trace without `closedloop.context.chunk_ids` can take them (OpenInference and
    /// OpenLLMetry put chunk ids on the retriever span only). Default 10000.
    #[serde(default = "default_max_retrieval_traces")]
    pub max_retrieval_traces: usize,
}

const fn default_wait_secs() -> u64 {
    30
}

const fn default_max_pending() -> usize {
    10_000
}

const fn default_max_retrieval_traces() -> usize {
    10_000
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            wait_secs: default_wait_secs(),
            max_pending: default_max_pending(),
            max_retrieval_traces: default_max_retrieval_traces(),
        }
    }
}

/// How often a receiver on a shared store looks for stored feedback whose window has passed.
const SHARED_SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The most expired feedback items one look records.
const MAX_SHARED_EXPIRIES: usize = 1000;

/// The locks a feedback item's join needs: the span it names and its trace (the trace's
/// responses it may resolve to) or else its response id, and its session (the detectors'
/// turns).
fn feedback_keys(
    link: Option<SpanRef>,
    response_id: Option<&str>,
    session_id: Option<&str>,
    keys: &mut Vec<LockKey>,
) {
    match (link, response_id) {
        (Some(link), _) => {
            keys.push(LockKey::span(&link));
            keys.push(LockKey::trace(&link.trace_id));
        }
        (None, Some(response_id)) => keys.push(LockKey::response_id(response_id)),
        (None, None) => {}
    }
    if let Some(session_id) = session_id {
        keys.push(LockKey::session(session_id));
    }
}

/// The locks an ingest batch's join needs on a store several receivers share, to be taken
/// together at the start of its transaction (in one call, so in one order): each response's
/// span, trace, response id and session, and each feedback item's keys (see
/// `feedback_keys`). A
/// receiver that then stores feedback for one of these responses, or a turn of one of these
/// sessions, waits for this transaction's commit and sees what it wrote.
pub fn batch_keys(batch: &IngestBatch, keys: &mut Vec<LockKey>) {
    for response in &batch.responses {
        let Some(span) = response.span else { continue };
        keys.push(LockKey::span(&span));
        keys.push(LockKey::trace(&span.trace_id));
        if let Some(response_id) = &response.response_id {
            keys.push(LockKey::response_id(response_id));
        }
        if let Some(session_id) = &response.session_id {
            keys.push(LockKey::session(session_id));
        }
    }
    for feedback in &batch.feedback {
        item_keys(feedback, keys);
    }
}

/// `feedback_keys` of one feedback item.
pub fn item_keys(feedback: &Feedback, keys: &mut Vec<LockKey>) {
    feedback_keys(
        feedback.target,
        feedback.response_id.as_deref(),
        feedback.session_id.as_deref(),
        keys,
    );
}

/// The most retrieval steps remembered per trace.
const MAX_RETRIEVALS_PER_TRACE: usize = 16;

/// The writer's view of the open transaction.
#[derive(Debug)]
pub struct Tx<'a> {
    /// The open transaction's connection: every statement of the join runs on it.
    pub conn: &'a mut Connection,
    /// The transaction's time, in seconds since the Unix epoch.
    pub now_s: i64,
    /// Whether content attributes are stored (`store.store_content`).
    pub store_content: bool,
    /// Whether failure records go to the outbox.
    pub export: bool,
    /// What the transaction did, for the counters, answered after the commit.
    pub effects: &'a mut Effects,
    /// Routing rules and the notification switch (see `crate::triage`).
    pub triage: &'a TriageShared,
}

#[derive(Debug)]
struct Waiting {
    deadline: Instant,
    span: Option<SpanRef>,
    link: Option<SpanRef>,
    response_id: Option<String>,
}

/// The join state kept by the writer thread: feedback waiting for its response, and recent
/// retrieval steps.
#[derive(Debug)]
pub struct Joiner {
    wait: Duration,
    max_pending: usize,
    /// Keyed by feedback row id, which grows with arrival: the first entry expires first.
    waiting: BTreeMap<i64, Waiting>,
    /// Waiting feedback that names a span, by the span's trace: any response of the trace
    /// resolves it.
    by_trace: HashMap<TraceId, Vec<i64>>,
    by_response_id: HashMap<String, Vec<i64>>,
    retrievals: HashMap<TraceId, Vec<Retrieval>>,
    retrieval_order: VecDeque<TraceId>,
    max_retrieval_traces: usize,
    /// The implicit-signal detectors, which feed this join.
    detectors: Detectors,
    /// On a store several receivers share: when to look for stored feedback whose window
    /// has passed (`None` until the first transaction says the store is shared).
    next_shared_scan: Option<Instant>,
    /// Keeps the waiting room in memory even on a shared store: for a command's one-off
    /// join, which must end the wait of its own feedback only, never the other receivers'.
    waiting_room_in_memory: bool,
}

impl Joiner {
    /// A joiner with the `[join]` and `[detectors]` settings; its state is loaded from the
    /// store in the writer's first transaction.
    pub fn new(config: &JoinConfig, detectors: &DetectorsConfig) -> Self {
        Self {
            wait: Duration::from_secs(config.wait_secs),
            max_pending: config.max_pending.max(1),
            waiting: BTreeMap::new(),
            by_trace: HashMap::new(),
            by_response_id: HashMap::new(),
            retrievals: HashMap::new(),
            retrieval_order: VecDeque::new(),
            max_retrieval_traces: config.max_retrieval_traces,
            detectors: Detectors::new(detectors),
            next_shared_scan: None,
            waiting_room_in_memory: false,
        }
    }

    /// A joiner for a command's one-off join (`review label`): its waiting room is in memory
    /// on every engine, so expiring it records the command's own feedback only.
    pub(crate) fn for_command(mut self) -> Self {
        self.waiting_room_in_memory = true;
        self
    }

    /// Whether waiting feedback waits in the store (a store several receivers share) rather
    /// than in this joiner's memory.
    fn waits_in_store(&self, w: &Tx<'_>) -> bool {
        !self.waiting_room_in_memory && w.conn.engine().is_shared()
    }

    /// Rebuilds the waiting room from the store, inside the open transaction: at startup, and
    /// before the first transaction after a failed commit (whose rollback may have undone
    /// joins, expiries and waiting rows the in-memory state already reflected). Waiting
    /// feedback whose response span is stored by now is joined, enriched, at once; the rest
    /// waits again, and the time already waited (before a restart, too) counts against the
    /// window. The new waiting room replaces the old one only when everything succeeded, so a
    /// failure leaves the joiner as it was and the caller retries.
    pub fn reload(&mut self, w: &mut Tx<'_>) -> Result<(), StoreError> {
        let previous = (
            std::mem::take(&mut self.waiting),
            std::mem::take(&mut self.by_trace),
            std::mem::take(&mut self.by_response_id),
        );
        let result = self.rebuild(w);
        if result.is_err() {
            (self.waiting, self.by_trace, self.by_response_id) = previous;
        }
        result
    }

    fn rebuild(&mut self, w: &mut Tx<'_>) -> Result<(), StoreError> {
        self.detectors.reload(w.conn)?;
        if self.waits_in_store(w) {
            // The waiting room is the store: look for expired feedback at once.
            self.next_shared_scan = Some(Instant::now());
            return Ok(());
        }
        let now = Instant::now();
        let mut joined: Vec<(SpanRef, Response)> = Vec::new();
        for row in w.conn.waiting_feedback()? {
            if let Some((response, span)) = judged_response(
                w.conn,
                row.link,
                row.response_id.as_deref(),
                Fallback::Exact,
            )? {
                w.conn
                    .set_feedback_target(row.row, span, FeedbackState::Joined)?;
                if !joined.iter().any(|(key, _)| *key == span) {
                    joined.push((span, response));
                }
                continue;
            }
            let waited = Duration::from_secs(w.now_s.saturating_sub(row.received_s).max(0) as u64);
            self.add_waiting(
                row.row,
                Waiting {
                    deadline: now + self.wait.saturating_sub(waited),
                    span: row.span,
                    link: row.link,
                    response_id: row.response_id,
                },
            );
        }
        // One revision per record, written once all of its feedback is joined.
        for (span, response) in &joined {
            update_failure(w, *span, Some(response))?;
        }
        Ok(())
    }

    /// When the oldest waiting feedback must be recorded without its response, or the
    /// detectors must look for quiet sessions, whichever comes first.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.waiting.values().next().map(|waiting| waiting.deadline);
        let waiting = match (waiting, self.next_shared_scan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (waiting, self.detectors.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Indexes waiting feedback by the trace of the span it names, or by its response id when
    /// it names none (the response id is a join key only for feedback without a span).
    fn add_waiting(&mut self, row: i64, waiting: Waiting) {
        match (waiting.link, &waiting.response_id) {
            (Some(link), _) => self.by_trace.entry(link.trace_id).or_default().push(row),
            (None, Some(response_id)) => self
                .by_response_id
                .entry(response_id.clone())
                .or_default()
                .push(row),
            (None, None) => {}
        }
        self.waiting.insert(row, waiting);
    }

    fn take_waiting(&mut self, row: i64) -> Option<Waiting> {
        let waiting = self.waiting.remove(&row)?;
        match (waiting.link, &waiting.response_id) {
            (Some(link), _) => remove_row(&mut self.by_trace, &link.trace_id, row),
            (None, Some(response_id)) => remove_row(&mut self.by_response_id, response_id, row),
            (None, None) => {}
        }
        Some(waiting)
    }

    /// Indexes the spans of one request and resolves the feedback they were waited for by:
    /// the request's nested LLM spans folded (see [`crate::lineage`]), each response indexed
    /// or folded into the stored response of the same call, the aliases written, then the
    /// waiting feedback of the request's traces joined, then the request's feedback.
    pub fn ingest(&mut self, w: &mut Tx<'_>, batch: IngestBatch) -> Result<(), StoreError> {
        for retrieval in batch.retrievals {
            self.remember(retrieval);
        }
        let plan = lineage::plan(batch.responses, &batch.lineage);
        let mut aliases = plan.aliases;
        let mut traces: Vec<TraceId> = Vec::new();
        let mut response_ids: Vec<(String, SpanRef)> = Vec::new();
        // The stored responses under the request's responses, looked up at once: none of
        // them can be indexed by this request (an LLM span with an LLM span of the request
        // beneath it folds into that one, see `lineage`), so this is what each would find.
        let spans: Vec<SpanRef> = plan.responses.iter().map(|planned| planned.span).collect();
        let stored_under = w.conn.responses_under(&spans)?;
        let mut to_index: Vec<(Response, SpanRef, Option<SpanId>)> = Vec::new();
        for planned in plan.responses {
            let Planned {
                mut response,
                span,
                parent,
                parent_in_request,
            } = planned;
            if response.chunk_ids.is_none() {
                self.carry_retrieval(&mut response);
            }
            if response.fingerprint.is_none() || batch.derived_queries.contains(&span) {
                self.carry_query(&mut response);
            }
            if !traces.contains(&span.trace_id) {
                traces.push(span.trace_id);
            }
            let enclosing = parent.filter(|_| !parent_in_request);
            let under = stored_under.get(&span).copied();
            if let Some(target) = fold_into_stored(w, &response, span, enclosing, under)? {
                for alias in &mut aliases {
                    if alias.1 == span.span_id {
                        alias.1 = target.span_id;
                    }
                }
                aliases.push((span, target.span_id));
                if let Some(response_id) = &response.response_id {
                    response_ids.push((response_id.clone(), target));
                }
                continue;
            }
            if let Some(response_id) = &response.response_id {
                response_ids.push((response_id.clone(), span));
            }
            to_index.push((response, span, parent));
        }
        // Indexed together (one statement on PostgreSQL), then judged in request order: the
        // detectors see every response of the request, so a turn's neighbours in its session
        // are the same whatever order the request listed them in.
        let rows: Vec<(&Response, SpanRef, Option<SpanId>)> = to_index
            .iter()
            .map(|(response, span, parent)| (response, *span, *parent))
            .collect();
        let inserted = w.conn.insert_responses(&rows, w.now_s, w.store_content)?;
        let new: Vec<(&Response, SpanRef)> = rows
            .iter()
            .zip(inserted)
            .filter(|(_, inserted)| *inserted)
            .map(|(&(response, span, _), _)| (response, span))
            .collect();
        let neighbours = self.detectors.neighbours(w.conn, &new)?;
        for ((response, span), neighbours) in new.into_iter().zip(neighbours) {
            for detected in self.detectors.on_response(w, response, span, neighbours)? {
                self.feedback(w, detected)?;
            }
        }
        w.conn.insert_aliases(&aliases, w.now_s)?;
        self.resolve(w, &traces, &response_ids)?;
        for feedback in batch.feedback {
            self.feedback(w, feedback)?;
        }
        Ok(())
    }

    /// Joins the waiting feedback a request's responses resolve: the feedback naming any span
    /// of `traces` (each now resolves to a response of its trace, see [`judged_response`]),
    /// and the feedback naming no span but one of `response_ids` (joined to the response
    /// given with it). On a store several receivers share the waiting room is the store
    /// itself (the feedback may have reached another receiver); the caller holds the locks of
    /// the traces and response ids (see [`batch_keys`]), so feedback stored at the same
    /// moment by another receiver is either committed and found here, or finds the responses
    /// once this transaction commits.
    fn resolve(
        &mut self,
        w: &mut Tx<'_>,
        traces: &[TraceId],
        response_ids: &[(String, SpanRef)],
    ) -> Result<(), StoreError> {
        let shared = self.waits_in_store(w);
        if !shared && self.waiting.is_empty() {
            return Ok(());
        }
        let mut joined: Vec<(SpanRef, Response)> = Vec::new();
        let mut joined_rows: Vec<i64> = Vec::new();
        // In the store, the waiting rows of all the traces and response ids, read at once.
        let (in_traces, for_response_ids) = if shared {
            let ids: Vec<&str> = response_ids.iter().map(|(id, _)| id.as_str()).collect();
            (
                w.conn.waiting_in_traces(traces)?,
                w.conn.waiting_for_response_ids(&ids)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        for trace_id in traces {
            let rows: Vec<(i64, SpanRef)> = if shared {
                in_traces
                    .iter()
                    .filter_map(|row| Some((row.row, row.link?)))
                    .filter(|(_, link)| link.trace_id == *trace_id)
                    .collect()
            } else {
                let rows = self.by_trace.get(trace_id).map_or(&[][..], Vec::as_slice);
                rows.iter()
                    .filter_map(|row| Some((*row, self.waiting.get(row)?.link?)))
                    .collect()
            };
            for (row, link) in rows {
                let Some((response, span)) =
                    judged_response(w.conn, Some(link), None, Fallback::Exact)?
                else {
                    continue;
                };
                self.take_waiting(row);
                w.conn
                    .set_feedback_target(row, span, FeedbackState::Joined)?;
                if !joined.iter().any(|(key, _)| *key == span) {
                    joined.push((span, response));
                }
            }
        }
        for (response_id, span) in response_ids {
            let mut rows: Vec<i64> = if shared {
                // Read once for the list, so a row an earlier id of it joined is still here.
                for_response_ids
                    .iter()
                    .filter(|row| row.response_id.as_deref() == Some(response_id.as_str()))
                    .map(|row| row.row)
                    .filter(|row| !joined_rows.contains(row))
                    .collect()
            } else {
                self.by_response_id
                    .get(response_id)
                    .cloned()
                    .unwrap_or_default()
            };
            if rows.is_empty() {
                continue;
            }
            let Some(response) = w.conn.response_by_span(*span)? else {
                continue;
            };
            rows.sort_unstable();
            for row in rows {
                joined_rows.push(row);
                self.take_waiting(row);
                w.conn
                    .set_feedback_target(row, *span, FeedbackState::Joined)?;
            }
            if !joined.iter().any(|(key, _)| key == span) {
                joined.push((*span, response));
            }
        }
        // One revision per record, written once all of its feedback is joined.
        for (span, response) in &joined {
            update_failure(w, *span, Some(response))?;
        }
        Ok(())
    }

    /// Stores one feedback item and, when it is negative, updates its failure record or lets
    /// it wait for its response.
    pub fn feedback(
        &mut self,
        w: &mut Tx<'_>,
        feedback: Feedback,
    ) -> Result<FeedbackWrite, StoreError> {
        let negative = self.detectors.is_negative(&feedback);
        let state = if negative {
            FeedbackState::Waiting
        } else {
            FeedbackState::Stored
        };
        let Some(row) = w.conn.insert_feedback(&feedback, w.now_s, state)? else {
            return Ok(FeedbackWrite::Duplicate);
        };
        w.effects
            .feedback_recorded
            .push((feedback.signal, feedback.kind, feedback.source));
        self.detectors.on_feedback(w, &feedback)?;
        if !negative {
            return Ok(FeedbackWrite::Recorded);
        }
        if let Some((response, span)) = judged_response(
            w.conn,
            feedback.target,
            feedback.response_id.as_deref(),
            Fallback::Exact,
        )? {
            w.conn
                .set_feedback_target(row, span, FeedbackState::Joined)?;
            update_failure(w, span, Some(&response))?;
            return Ok(FeedbackWrite::Recorded);
        }
        if self.waits_in_store(w) {
            // The stored row (state "waiting") is the waiting room: the response may reach
            // any receiver, and `expire_shared` ends the wait wherever it is.
            return Ok(FeedbackWrite::Recorded);
        }
        self.add_waiting(
            row,
            Waiting {
                deadline: Instant::now() + self.wait,
                span: feedback.span,
                link: feedback.target,
                response_id: feedback.response_id,
            },
        );
        while self.waiting.len() > self.max_pending {
            let Some((&oldest, _)) = self.waiting.iter().next() else {
                break;
            };
            self.give_up(w, oldest, Fallback::Exact)?;
        }
        Ok(FeedbackWrite::Recorded)
    }

    /// Records, unenriched, the waiting feedback whose window has passed, and the feedback of
    /// the detectors that run on a timer (abandon).
    pub fn expire(&mut self, w: &mut Tx<'_>, now: Instant) -> Result<(), StoreError> {
        if self.waits_in_store(w) {
            self.expire_shared(w, now)?;
        }
        while let Some((&row, waiting)) = self.waiting.iter().next() {
            if waiting.deadline > now {
                break;
            }
            self.give_up(w, row, Fallback::Trace)?;
        }
        for detected in self.detectors.due(w, now)? {
            self.feedback(w, detected)?;
        }
        Ok(())
    }

    /// On a store several receivers share: ends the wait of stored feedback whose window has
    /// passed, whichever receiver stored it (so feedback is recorded even when the receiver
    /// that got it has stopped). Every receiver looks, at most once a second; the locks and
    /// the state read under them make one of them record each item. Feedback whose response
    /// has arrived by now (a race the locks did not cover) is joined, enriched.
    fn expire_shared(&mut self, w: &mut Tx<'_>, now: Instant) -> Result<(), StoreError> {
        if self.next_shared_scan.is_some_and(|next| now < next) {
            return Ok(());
        }
        self.next_shared_scan = Some(now + SHARED_SCAN_INTERVAL);
        let window = self.wait.as_secs().min(i64::MAX as u64) as i64;
        let due = w
            .conn
            .waiting_received_by(w.now_s.saturating_sub(window), MAX_SHARED_EXPIRIES)?;
        if due.len() == MAX_SHARED_EXPIRIES {
            // More are due: look again at the next wake-up.
            self.next_shared_scan = Some(now);
        }
        for row in due {
            let mut keys = Vec::new();
            feedback_keys(row.link, row.response_id.as_deref(), None, &mut keys);
            if let Some(span) = row.span {
                keys.push(LockKey::span(&span));
            }
            w.conn.lock(keys)?;
            if !w.conn.is_waiting(row.row)? {
                continue;
            }
            if let Some((response, span)) = judged_response(
                w.conn,
                row.link,
                row.response_id.as_deref(),
                Fallback::Trace,
            )? {
                w.conn
                    .set_feedback_target(row.row, span, FeedbackState::Joined)?;
                update_failure(w, span, Some(&response))?;
                continue;
            }
            let Some(key) = row.link.or(row.span) else {
                w.conn
                    .set_feedback_state(row.row, FeedbackState::Unjoined)?;
                continue;
            };
            w.conn
                .set_feedback_target(row.row, key, FeedbackState::Unjoined)?;
            update_failure(w, key, None)?;
        }
        Ok(())
    }

    /// Ends the wait of waiting feedback `row`: at its deadline (`fallback` is then
    /// [`Fallback::Trace`]), or early because the waiting room is full ([`Fallback::Exact`]:
    /// the span it names may still arrive, so it is recorded unenriched rather than on
    /// another answer of its trace).
    fn give_up(&mut self, w: &mut Tx<'_>, row: i64, fallback: Fallback) -> Result<(), StoreError> {
        let Some(waiting) = self.take_waiting(row) else {
            return Ok(());
        };
        // At the deadline, a span the receiver has not seen above an answer resolves to its
        // trace's last answer.
        if let Some((response, span)) = judged_response(
            w.conn,
            waiting.link,
            waiting.response_id.as_deref(),
            fallback,
        )? {
            w.conn
                .set_feedback_target(row, span, FeedbackState::Joined)?;
            return update_failure(w, span, Some(&response));
        }
        // The record belongs to the judged span when the feedback named it; feedback that only
        // had a response id is recorded on the feedback span, which lives in the judged trace.
        let Some(key) = waiting.link.or(waiting.span) else {
            // Nothing names a trace to put a record in (API feedback with neither ids nor a
            // known response id): the feedback stays stored, without a record.
            return w.conn.set_feedback_state(row, FeedbackState::Unjoined);
        };
        w.conn
            .set_feedback_target(row, key, FeedbackState::Unjoined)?;
        update_failure(w, key, None)
    }

    fn remember(&mut self, retrieval: Retrieval) {
        if self.max_retrieval_traces == 0 {
            return;
        }
        let trace_id = retrieval.trace_id;
        let steps = match self.retrievals.get_mut(&trace_id) {
            Some(steps) => steps,
            None => {
                while self.retrievals.len() >= self.max_retrieval_traces {
                    match self.retrieval_order.pop_front() {
                        Some(old) => {
                            self.retrievals.remove(&old);
                        }
                        None => break,
                    }
                }
                self.retrieval_order.push_back(trace_id);
                self.retrievals.entry(trace_id).or_default()
            }
        };
        if steps.len() >= MAX_RETRIEVALS_PER_TRACE {
            steps.remove(0);
        }
        steps.push(retrieval);
    }

    /// The last retrieval step of `response`'s trace that ended before it started and has
    /// what `has` asks for.
    fn last_step_before(
        &self,
        response: &Response,
        has: impl Fn(&Retrieval) -> bool,
    ) -> Option<&Retrieval> {
        let span = response.span?;
        let start = response.start_unix_nano;
        self.retrievals
            .get(&span.trace_id)?
            .iter()
            .filter(|step| has(step))
            .filter(|step| start == 0 || step.end_unix_nano <= start)
            .max_by_key(|step| step.end_unix_nano)
    }

    /// Gives an LLM span without chunk ids those of the last retrieval step of its trace that
    /// ended before it started (with its data source and index version when it has none).
    fn carry_retrieval(&self, response: &mut Response) {
        let Some(step) = self.last_step_before(response, |step| step.chunk_ids.is_some()) else {
            return;
        };
        response.chunk_ids.clone_from(&step.chunk_ids);
        if response.data_source.is_none() {
            response.data_source.clone_from(&step.data_source);
        }
        if response.index_version.is_none() {
            response.index_version.clone_from(&step.index_version);
        }
    }

    /// Gives an LLM span whose query was not given the query of the last retrieval step of its
    /// trace that ended before it started and carried one: the retriever's input is the user's
    /// question, where the LLM span's last user message is the rendered prompt.
    fn carry_query(&self, response: &mut Response) {
        let Some(step) = self.last_step_before(response, |step| step.fingerprint.is_some()) else {
            return;
        };
        response.fingerprint.clone_from(&step.fingerprint);
        response.content.query.clone_from(&step.query);
    }
}

fn remove_row<K: std::hash::Hash + Eq + ?Sized, Q>(
    map: &mut HashMap<Q, Vec<i64>>,
    key: &K,
    row: i64,
) where
    Q: std::borrow::Borrow<K> + std::hash::Hash + Eq,
{
    if let Some(rows) = map.get_mut(key) {
        rows.retain(|&other| other != row);
        if rows.is_empty() {
            map.remove(key);
        }
    }
}

/// How far the resolution of a named span may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    /// Only the span's own response or the response it is an alias of: while feedback may
    /// still wait, the span it names may yet arrive as a response of its own.
    Exact,
    /// Also the trace's last-ending response: once the wait is over.
    Trace,
}

/// The stored response a feedback item judges, with its span. Feedback that names a span
/// joins the response of that span's trace it resolves to (the module docs say which) or
/// none; the response id finds the response only for feedback that names no span, so a token
/// (or a link) for one answer can never reach another trace's.
fn judged_response(
    conn: &mut Connection,
    link: Option<SpanRef>,
    response_id: Option<&str>,
    fallback: Fallback,
) -> Result<Option<(Response, SpanRef)>, StoreError> {
    let found = match (link, response_id) {
        (Some(link), _) => response_of_span(conn, link, fallback)?,
        (None, Some(response_id)) => conn.response_by_response_id(response_id)?,
        (None, None) => None,
    };
    Ok(found.and_then(|response| response.span.map(|span| (response, span))))
}

/// The response the span `link` resolves to: its own, that of its alias, else (with
/// [`Fallback::Trace`]) its trace's last-ending one.
fn response_of_span(
    conn: &mut Connection,
    link: SpanRef,
    fallback: Fallback,
) -> Result<Option<Response>, StoreError> {
    if let Some(response) = conn.response_by_span(link)? {
        return Ok(Some(response));
    }
    if let Some(target) = conn.alias_target(link)? {
        if let Some(response) = conn.response_by_span(target)? {
            return Ok(Some(response));
        }
    }
    match fallback {
        Fallback::Exact => Ok(None),
        Fallback::Trace => conn.last_response_of_trace(&link.trace_id),
    }
}

/// Folds `response`, an LLM span that is one call with a stored response, into that one: the
/// stored response under span id `enclosing` (the arriving span's parent, when the request
/// did not hold it), else `stored_under`, the row of a stored response whose parent is the
/// arriving span (the caller looked it up for the whole request). The stored
/// row gets the details it lacks from `response` (and its failure record a new revision with
/// them); the caller makes `span` its alias. Returns the stored response's span, or `None`
/// when `response` is a call of its own.
fn fold_into_stored(
    w: &mut Tx<'_>,
    response: &Response,
    span: SpanRef,
    enclosing: Option<SpanId>,
    stored_under: Option<i64>,
) -> Result<Option<SpanRef>, StoreError> {
    let mut stored = match enclosing.and_then(|parent| SpanRef::new(span.trace_id, parent)) {
        Some(parent) => w.conn.response_by_span(parent)?,
        None => None,
    };
    if let (None, Some(row)) = (&stored, stored_under) {
        stored = w.conn.response_by_row(row)?;
    }
    let Some(mut stored) = stored else {
        return Ok(None);
    };
    let Some(target) = stored.span.filter(|target| *target != span) else {
        return Ok(None);
    };
    let changed = lineage::fill_missing(&mut stored, response);
    if changed || (w.store_content && !stored.content.is_empty()) {
        w.conn
            .update_response_details(target, &stored, w.store_content)?;
    }
    if changed && w.conn.failure_state(target)?.is_some() {
        update_failure(w, target, Some(&stored))?;
    }
    Ok(Some(target))
}

/// Writes the next revision of the failure record keyed by `key` from all of its negative
/// feedback, and queues its span for export.
/// What made a record's revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// Its negative feedback (the newest is named in the revision's history).
    Feedback,
    /// A triage change (its note is the record's latest).
    Triage,
}

fn update_failure(
    w: &mut Tx<'_>,
    key: SpanRef,
    response: Option<&Response>,
) -> Result<(), StoreError> {
    update_failure_because(w, key, response, Cause::Feedback)
}

/// [`update_failure`], with what caused the revision, which its history keeps.
fn update_failure_because(
    w: &mut Tx<'_>,
    key: SpanRef,
    response: Option<&Response>,
    cause: Cause,
) -> Result<(), StoreError> {
    if w.conn.engine().is_shared() {
        // Two receivers must not write the same revision of one record.
        w.conn.lock([LockKey::span(&key)])?;
    }
    let negatives = w.conn.negatives(key)?;
    if negatives.is_empty() {
        return Ok(());
    }
    let previous = w.conn.failure_state(key)?;
    let enriched = response.is_some() || previous.is_some_and(|state| state.enriched);
    let context = match response {
        None => Context::Unknown,
        Some(response) => match &response.chunk_ids {
            None => Context::NoChunkAttribute,
            Some(chunks) if chunks.is_empty() => Context::Empty,
            Some(_) => Context::Chunks,
        },
    };
    let items: Vec<_> = negatives
        .iter()
        .map(|row| rules::NegativeItem {
            signal: row.signal,
            kind: row.kind,
            category: row.category,
        })
        .collect();
    let decision = rules::decide(&items, context);
    let revision = previous.map_or(1, |state| state.revision + 1);
    let signals = decision
        .signals
        .iter()
        .map(|signal| signal.as_str())
        .collect::<Vec<_>>()
        .join(",");
    w.conn.upsert_failure(&FailureRow {
        key,
        now_s: w.now_s,
        category: decision.category,
        stage: decision.stage,
        severity: decision.severity,
        signals: &signals,
        feedback_count: negatives.len() as i64,
        revision,
        enriched,
        triage_status: TriageStatus::Open,
    })?;
    if previous.is_none() {
        w.effects
            .failure_records
            .push((decision.category, decision.stage));
    }
    let assignment = triage::after_upsert(w, key, &decision, response, previous.is_none())?;
    let cause = match (cause, negatives.last()) {
        (Cause::Feedback, Some(newest)) => RevisionCause::Feedback(&newest.feedback_id),
        _ => RevisionCause::TriageNote,
    };
    w.conn.record_failure_revision(key, w.now_s, cause)?;
    if w.export {
        let feedback_spans: Vec<SpanRef> = negatives.iter().filter_map(|row| row.span).collect();
        let time_unix_nano = negatives
            .iter()
            .map(|row| row.time_ns as u64)
            .max()
            .unwrap_or_default();
        let span = failure_span(&FailureSpan {
            key,
            revision,
            decision: &decision,
            feedback_count: negatives.len(),
            enriched,
            response,
            feedback_spans: &feedback_spans,
            time_unix_nano,
            triage: &assignment,
        });
        w.effects.outbox_added += w.conn.insert_outbox(w.now_s, &span)?;
    }
    Ok(())
}

/// Writes the next revision of an existing failure record from its stored state (a triage
/// status change), exported like any other revision. The record's response is used only if
/// the record was enriched (a late response does not enrich a record retroactively). Returns
/// the new revision, or 0 when the record has no negative feedback left (pruned). The
/// revision's history names the record's latest triage note (the change's) as its cause.
pub fn revise(w: &mut Tx<'_>, key: SpanRef) -> Result<i64, StoreError> {
    let enriched = w
        .conn
        .failure_state(key)?
        .is_some_and(|state| state.enriched);
    let response = if enriched {
        w.conn.response_by_span(key)?
    } else {
        None
    };
    update_failure_because(w, key, response.as_ref(), Cause::Triage)?;
    Ok(w.conn.failure_state(key)?.map_or(0, |state| state.revision))
}

#[cfg(test)]
mod tests;
