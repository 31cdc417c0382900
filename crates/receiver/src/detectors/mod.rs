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

use closedloop_tracing::{query_similarity, Fingerprint};
use rusqlite::{params, Connection, OptionalExtension};

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
pub(crate) struct Detectors {
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
    pub(crate) fn new(config: &DetectorsConfig) -> Self {
        Self {
            config: config.clone(),
            next_abandon_check: config.abandon.enabled.then(Instant::now),
        }
    }

    /// At startup (and after a failed commit, inside the next transaction): forgets abandon
    /// candidates when the abandon detector is off, so turning it off never fires old ones
    /// later, and looks for due candidates at once, since a rolled-back check may have
    /// taken some.
    pub(crate) fn reload(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.config.abandon.enabled {
            conn.execute("DELETE FROM abandon_candidates", [])?;
            return Ok(());
        }
        self.next_abandon_check = Some(Instant::now());
        Ok(())
    }

    /// When the writer must wake up to look for quiet sessions.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next_abandon_check
    }

    /// Whether a feedback item is negative, with the edit threshold of this configuration.
    pub(crate) fn is_negative(&self, feedback: &Feedback) -> bool {
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
    pub(crate) fn on_response(
        &mut self,
        w: &mut Tx<'_>,
        response: &Response,
        span: SpanRef,
    ) -> rusqlite::Result<Vec<Feedback>> {
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
        conn: &Connection,
        previous: &Turn,
        next: &Turn,
    ) -> rusqlite::Result<Option<Feedback>> {
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
        if has_signal(conn, previous.span, signal)? {
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
    ) -> rusqlite::Result<()> {
        if has_feedback(w.conn, turn.span)? {
            return Ok(());
        }
        let due_s = w
            .now_s
            .saturating_add(self.config.abandon.window_secs.min(i64::MAX as u64) as i64);
        w.conn
            .prepare_cached(
                "INSERT INTO abandon_candidates (session_id, trace_id, span_id, start_ns, due_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (session_id) DO UPDATE SET trace_id = excluded.trace_id,
                    span_id = excluded.span_id, start_ns = excluded.start_ns,
                    due_s = excluded.due_s
                 WHERE excluded.start_ns >= abandon_candidates.start_ns",
            )?
            .execute(params![
                session_id,
                &turn.span.trace_id[..],
                &turn.span.span_id[..],
                turn.start_ns,
                due_s
            ])?;
        Ok(())
    }

    /// A feedback item was recorded: activity in its session, so its response (and the
    /// session's last response) is not abandoned. A detector's own feedback is not activity.
    pub(crate) fn on_feedback(
        &mut self,
        w: &mut Tx<'_>,
        feedback: &Feedback,
    ) -> rusqlite::Result<()> {
        if !self.config.abandon.enabled || feedback.source == FeedbackSource::Detector {
            return Ok(());
        }
        if let Some(target) = feedback.target {
            w.conn
                .prepare_cached(
                    "DELETE FROM abandon_candidates WHERE trace_id = ?1 AND span_id = ?2",
                )?
                .execute(params![&target.trace_id[..], &target.span_id[..]])?;
        }
        if let Some(session_id) = &feedback.session_id {
            w.conn
                .prepare_cached("DELETE FROM abandon_candidates WHERE session_id = ?1")?
                .execute([session_id])?;
        }
        Ok(())
    }

    /// Emits `abandon` for the candidates whose window has passed, when a check is due.
    pub(crate) fn due(&mut self, w: &mut Tx<'_>, now: Instant) -> rusqlite::Result<Vec<Feedback>> {
        let Some(next) = self.next_abandon_check else {
            return Ok(Vec::new());
        };
        if now < next {
            return Ok(Vec::new());
        }
        let interval = Duration::from_secs(self.config.abandon.check_interval_secs.max(1));
        self.next_abandon_check = Some(now + interval);
        let candidates: Vec<(String, Option<SpanRef>, i64)> = w
            .conn
            .prepare_cached(
                "SELECT session_id, trace_id, span_id, start_ns FROM abandon_candidates
                 WHERE due_s <= ?1 ORDER BY due_s LIMIT ?2",
            )?
            .query_map(params![w.now_s, MAX_ABANDONS_PER_CHECK as i64], |row| {
                let trace_id: Vec<u8> = row.get(1)?;
                let span_id: Vec<u8> = row.get(2)?;
                Ok((
                    row.get(0)?,
                    SpanRef::from_bytes(&trace_id, &span_id),
                    row.get(3)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        if candidates.len() == MAX_ABANDONS_PER_CHECK {
            // More are due: look again at once.
            self.next_abandon_check = Some(now);
        }
        let mut emitted = Vec::new();
        for (session_id, span, start_ns) in candidates {
            w.conn
                .prepare_cached("DELETE FROM abandon_candidates WHERE session_id = ?1")?
                .execute([&session_id])?;
            let Some(span) = span else { continue };
            // A later response of the session that arrived out of order, or feedback that
            // arrived before its response, means the session was not abandoned here.
            if has_later_response(w.conn, &session_id, start_ns)? || has_feedback(w.conn, span)? {
                continue;
            }
            let Some(response) = crate::store::queries::response_by_span(w.conn, span)? else {
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
                time_unix_nano: crate::spans::now_unix_nano(),
            });
        }
        Ok(emitted)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Previous,
    Next,
}

/// The closest earlier (or later) response of the session, in another trace, that carried a
/// query.
fn neighbour(
    conn: &Connection,
    session_id: &str,
    turn: &Turn,
    direction: Direction,
) -> rusqlite::Result<Option<Turn>> {
    let sql = match direction {
        Direction::Previous => {
            "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us, r.fingerprint,
                r.response_id, r.user_id, c.query
             FROM responses r LEFT JOIN response_content c ON c.response = r.id
             WHERE r.session_id = ?1 AND r.start_ns < ?2 AND r.trace_id != ?3
                AND (r.fingerprint IS NOT NULL OR c.query IS NOT NULL)
             ORDER BY r.start_ns DESC LIMIT 1"
        }
        Direction::Next => {
            "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us, r.fingerprint,
                r.response_id, r.user_id, c.query
             FROM responses r LEFT JOIN response_content c ON c.response = r.id
             WHERE r.session_id = ?1 AND r.start_ns > ?2 AND r.trace_id != ?3
                AND (r.fingerprint IS NOT NULL OR c.query IS NOT NULL)
             ORDER BY r.start_ns ASC LIMIT 1"
        }
    };
    conn.prepare_cached(sql)?
        .query_row(
            params![session_id, turn.start_ns, &turn.span.trace_id[..]],
            |row| {
                let trace_id: Vec<u8> = row.get(0)?;
                let span_id: Vec<u8> = row.get(1)?;
                let start_ns: i64 = row.get(2)?;
                let duration_us: i64 = row.get(3)?;
                Ok(SpanRef::from_bytes(&trace_id, &span_id).map(|span| Turn {
                    span,
                    start_ns,
                    end_ns: start_ns.saturating_add(duration_us.saturating_mul(1_000)),
                    fingerprint: row.get(4).ok().flatten(),
                    response_id: row.get(5).ok().flatten(),
                    user_id: row.get(6).ok().flatten(),
                    text: row.get(7).ok().flatten(),
                    session_id: Some(session_id.to_owned()),
                }))
            },
        )
        .optional()
        .map(Option::flatten)
}

/// Whether any feedback names this response span (joined, or linking to it).
fn has_feedback(conn: &Connection, span: SpanRef) -> rusqlite::Result<bool> {
    let ids = params![&span.trace_id[..], &span.span_id[..]];
    let joined = conn
        .prepare_cached(
            "SELECT 1 FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2 LIMIT 1",
        )?
        .exists(ids)?;
    Ok(joined
        || conn
            .prepare_cached(
                "SELECT 1 FROM feedback WHERE link_trace_id = ?1 AND link_span_id = ?2 LIMIT 1",
            )?
            .exists(ids)?)
}

/// Whether this response span already has feedback with this signal.
fn has_signal(conn: &Connection, span: SpanRef, signal: FeedbackSignal) -> rusqlite::Result<bool> {
    let ids = params![&span.trace_id[..], &span.span_id[..], signal.as_str()];
    let joined = conn
        .prepare_cached(
            "SELECT 1 FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2
                AND signal = ?3 LIMIT 1",
        )?
        .exists(ids)?;
    Ok(joined
        || conn
            .prepare_cached(
                "SELECT 1 FROM feedback WHERE link_trace_id = ?1 AND link_span_id = ?2
                    AND signal = ?3 LIMIT 1",
            )?
            .exists(ids)?)
}

fn has_later_response(
    conn: &Connection,
    session_id: &str,
    start_ns: i64,
) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM responses WHERE session_id = ?1 AND start_ns > ?2 LIMIT 1")?
        .exists(params![session_id, start_ns])
}

#[cfg(test)]
mod tests;
