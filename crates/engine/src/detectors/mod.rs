//! Implicit-signal detectors: feedback read from behaviour.
//!
//! The detectors run on the store's writer thread, inside the transaction that indexes a
//! response span or records feedback, so they see exactly what is committed and never race
//! with the join. What they emit is ordinary [`Feedback`] (source `detector`, kind `implicit`)
//! handed to the same join as explicit feedback, so it creates or revises the failure record
//! of the response it judges by the same rules.
//!
//! - **rephrase / regenerate**: when a response with a query (fingerprint or text) is indexed,
//!   it is paired with the previous and the next response of its session (by start time, so
//!   spans may arrive out of order). A near-duplicate next query within the window judges the
//!   previous response: `regenerate` at or above the regenerate threshold, else `rephrase`.
//! - **abandon**: each session's last response waits in the `abandon_candidates` table; a
//!   further response replaces it, feedback about it or its session (other than a detector's)
//!   cancels it, and once its window passes without either it gets `abandon`.
//! - **edit**: `edit` feedback from the application is negative when it changed more than the
//!   configured fraction of the answer (see [`Detectors::is_negative`]).
//!
//! All state is in the store (memory stays bounded whatever the number of sessions), and
//! every emitted item has a deterministic id (`det:<signal>:<trace id>:<span id>` of the judged
//! response), which the idempotent feedback table deduplicates: a restart, an OTLP retry or
//! the same pair seen from both of its ends never emits twice.

mod config;

use std::time::{Duration, Instant};

use closedloop_store::{Connection, Direction, StoreError};
use closedloop_tracing::{query_similarity, Fingerprint};

pub use config::{
    AbandonDetectorConfig, DetectorsConfig, EditDetectorConfig, RegenerateDetectorConfig,
    RephraseDetectorConfig,
};

use crate::join::Tx;
use crate::records::{Feedback, Response, SpanRef};
use crate::rules;
use crate::vocab::{FeedbackKind, FeedbackSignal, FeedbackSource};

/// The most abandon candidates handled in one transaction; the rest wait for the next check.
const MAX_ABANDONS_PER_CHECK: usize = 1_000;

/// The detectors' state on the writer thread: their configuration and when to look for quiet
/// sessions next. Everything else lives in the store.
#[derive(Debug)]
pub struct Detectors {
    config: DetectorsConfig,
    next_abandon_check: Option<Instant>,
}

/// One response of a session as the pair detectors see it.
#[derive(Clone, Debug)]
struct Turn {
    span: SpanRef,
    start_ns: i64,
    end_ns: i64,
    fingerprint: Option<String>,
    text: Option<String>,
    response_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
}

impl Turn {
    fn has_query(&self) -> bool {
        self.fingerprint.is_some() || self.text.is_some()
    }
}

/// How two consecutive queries compare.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Similarity {
    /// Computed from both query texts.
    Text(f64),
    /// Estimated from both query fingerprints.
    Fingerprint(f64),
}

fn compare(previous: &Turn, next: &Turn) -> Option<Similarity> {
    if let (Some(a), Some(b)) = (&previous.text, &next.text) {
        if let Some(similarity) = query_similarity(a, b) {
            return Some(Similarity::Text(similarity));
        }
    }
    let a: Fingerprint = previous.fingerprint.as_deref()?.parse().ok()?;
    let b: Fingerprint = next.fingerprint.as_deref()?.parse().ok()?;
    a.similarity(&b).map(Similarity::Fingerprint)
}

fn detector_feedback_id(signal: FeedbackSignal, span: SpanRef) -> String {
    format!(
        "det:{}:{}:{}",
        signal.as_str(),
        hex::encode(span.trace_id),
        hex::encode(span.span_id)
    )
}

impl Detectors {
    /// The detectors the `[detectors]` section turns on, with its thresholds.
    pub fn new(config: &DetectorsConfig) -> Self {
        Self {
            config: config.clone(),
            next_abandon_check: config.abandon.enabled.then(Instant::now),
        }
    }

    /// At startup (and after a failed commit, inside the next transaction): forgets abandon
    /// candidates when the abandon detector is off, so turning it off never fires old ones
    /// later, and looks for due candidates at once, since a rolled-back check may have
    /// taken some.
    pub fn reload(&mut self, conn: &mut Connection) -> Result<(), StoreError> {
        if !self.config.abandon.enabled {
            return conn.clear_abandon_candidates();
        }
        self.next_abandon_check = Some(Instant::now());
        Ok(())
    }

    /// When the writer must wake up to look for quiet sessions.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_abandon_check
    }

    /// Whether a feedback item is negative, with the edit threshold of this configuration.
    pub fn is_negative(&self, feedback: &Feedback) -> bool {
        let edit = &self.config.edit;
        let edit_negative_below = edit
            .enabled
            .then(|| 1.0 - edit.max_changed_fraction.clamp(0.0, 1.0));
        rules::is_negative_with(
            feedback.signal,
            feedback.value,
            feedback.category,
            edit_negative_below,
        )
    }

    /// A response span was indexed for the first time: pairs it with its session's previous
    /// and next turns and makes it its session's abandon candidate. Returns the feedback to
    /// record.
    pub fn on_response(
        &mut self,
        w: &mut Tx<'_>,
        response: &Response,
        span: SpanRef,
    ) -> Result<Vec<Feedback>, StoreError> {
        let Some(session_id) = response.session_id.as_deref() else {
            return Ok(Vec::new());
        };
        let mut emitted = Vec::new();
        let turn = Turn {
            span,
            start_ns: response.start_unix_nano as i64,
            end_ns: response.end_unix_nano.max(response.start_unix_nano) as i64,
            fingerprint: response.fingerprint.clone(),
            // The text of this span is at hand even when the store does not keep content.
            text: response.content.query.clone(),
            response_id: response.response_id.clone(),
            session_id: Some(session_id.to_owned()),
            user_id: response.user_id.clone(),
        };
        let pairs = self.config.rephrase.enabled || self.config.regenerate.enabled;
        if pairs && turn.has_query() {
            if let Some(previous) = neighbour(w.conn, session_id, &turn, Direction::Previous)? {
                emitted.extend(self.judge_pair(w.conn, &previous, &turn)?);
            }
            if let Some(next) = neighbour(w.conn, session_id, &turn, Direction::Next)? {
                emitted.extend(self.judge_pair(w.conn, &turn, &next)?);
            }
        }
        if self.config.abandon.enabled {
            self.abandon_candidate(w, session_id, &turn)?;
        }
        Ok(emitted)
    }

    /// Judges the previous turn of a pair: `regenerate`, `rephrase` or nothing.
    fn judge_pair(
        &self,
        conn: &mut Connection,
        previous: &Turn,
        next: &Turn,
    ) -> Result<Option<Feedback>, StoreError> {
        let Some(similarity) = compare(previous, next) else {
            return Ok(None);
        };
        let gap = Duration::from_nanos(next.start_ns.saturating_sub(previous.end_ns).max(0) as u64);
        let (value, rephrase_threshold) = match similarity {
            Similarity::Text(value) => (value, self.config.rephrase.text_threshold),
            Similarity::Fingerprint(value) => (value, self.config.rephrase.threshold),
        };
        let regenerate = &self.config.regenerate;
        let rephrase = &self.config.rephrase;
        let signal = if regenerate.enabled
            && gap <= Duration::from_secs(regenerate.window_secs)
            && value >= regenerate.threshold
        {
            FeedbackSignal::Regenerate
        } else if rephrase.enabled
            && gap <= Duration::from_secs(rephrase.window_secs)
            && value >= rephrase_threshold
        {
            FeedbackSignal::Rephrase
        } else {
            return Ok(None);
        };
        // The application may have reported the same action itself (an explicit regenerate
        // button): one item of a signal per response is enough.
        if conn.has_signal(previous.span, signal)? {
            return Ok(None);
        }
        Ok(Some(Feedback {
            feedback_id: detector_feedback_id(signal, previous.span),
            span: None,
            target: Some(previous.span),
            response_id: previous.response_id.clone(),
            signal,
            kind: FeedbackKind::Implicit,
            value: Some(0.0),
            category: None,
            source: FeedbackSource::Detector,
            comment: None,
            session_id: previous.session_id.clone(),
            user_id: previous.user_id.clone(),
            time_unix_nano: next.start_ns.max(0) as u64,
        }))
    }

    /// Makes `turn` its session's abandon candidate unless a later response is one already or
    /// the response already has feedback.
    fn abandon_candidate(
        &self,
        w: &mut Tx<'_>,
        session_id: &str,
        turn: &Turn,
    ) -> Result<(), StoreError> {
        if w.conn.has_feedback(turn.span)? {
            return Ok(());
        }
        let due_s = w
            .now_s
            .saturating_add(self.config.abandon.window_secs.min(i64::MAX as u64) as i64);
        w.conn
            .set_abandon_candidate(session_id, turn.span, turn.start_ns, due_s)
    }

    /// A feedback item was recorded: activity in its session, so its response (and the
    /// session's last response) is not abandoned. A detector's own feedback is not activity.
    pub fn on_feedback(&mut self, w: &mut Tx<'_>, feedback: &Feedback) -> Result<(), StoreError> {
        if !self.config.abandon.enabled || feedback.source == FeedbackSource::Detector {
            return Ok(());
        }
        if let Some(target) = feedback.target {
            w.conn.drop_abandon_candidate_span(target)?;
        }
        if let Some(session_id) = &feedback.session_id {
            w.conn.drop_abandon_candidate(session_id)?;
        }
        Ok(())
    }

    /// Emits `abandon` for the candidates whose window has passed, when a check is due.
    pub fn due(&mut self, w: &mut Tx<'_>, now: Instant) -> Result<Vec<Feedback>, StoreError> {
        let Some(next) = self.next_abandon_check else {
            return Ok(Vec::new());
        };
        if now < next {
            return Ok(Vec::new());
        }
        let interval = Duration::from_secs(self.config.abandon.check_interval_secs.max(1));
        self.next_abandon_check = Some(now + interval);
        let candidates = w
            .conn
            .due_abandon_candidates(w.now_s, MAX_ABANDONS_PER_CHECK)?;
        if candidates.len() == MAX_ABANDONS_PER_CHECK {
            // More are due: look again at once.
            self.next_abandon_check = Some(now);
        }
        let mut emitted = Vec::new();
        for candidate in candidates {
            let session_id = candidate.session_id;
            w.conn.drop_abandon_candidate(&session_id)?;
            let Some(span) = candidate.span else { continue };
            // A later response of the session that arrived out of order, or feedback that
            // arrived before its response, means the session was not abandoned here.
            if w.conn.has_later_response(&session_id, candidate.start_ns)?
                || w.conn.has_feedback(span)?
            {
                continue;
            }
            let Some(response) = w.conn.response_by_span(span)? else {
                // Pruned since: nothing left to judge.
                continue;
            };
            emitted.push(Feedback {
                feedback_id: detector_feedback_id(FeedbackSignal::Abandon, span),
                span: None,
                target: Some(span),
                response_id: response.response_id,
                signal: FeedbackSignal::Abandon,
                kind: FeedbackKind::Implicit,
                value: Some(0.0),
                category: None,
                source: FeedbackSource::Detector,
                comment: None,
                session_id: Some(session_id),
                user_id: response.user_id,
                time_unix_nano: crate::timefmt::now_unix_nano(),
            });
        }
        Ok(emitted)
    }
}

/// The closest earlier (or later) response of the session, in another trace, that carried a
/// query.
fn neighbour(
    conn: &mut Connection,
    session_id: &str,
    turn: &Turn,
    direction: Direction,
) -> Result<Option<Turn>, StoreError> {
    let found =
        conn.session_neighbour(session_id, turn.start_ns, &turn.span.trace_id, direction)?;
    Ok(found.map(|found| Turn {
        span: found.span,
        start_ns: found.start_ns,
        end_ns: found.end_ns,
        fingerprint: found.fingerprint,
        response_id: found.response_id,
        user_id: found.user_id,
        text: found.query,
        session_id: Some(session_id.to_owned()),
    }))
}

#[cfg(test)]
mod tests;
