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
//!
//! Each detector is one file with its configuration section (`rephrase.rs`, `regenerate.rs`,
//! `abandon.rs`, `edit.rs`); this module holds what they share ([`Detectors`], the
//! `[detectors]` section, and the pairing of a session's turns). A new detector is a new file
//! with its `*DetectorConfig`, a field of [`DetectorsConfig`], and the hook of [`Detectors`]
//! it runs from (`on_response`, `on_feedback`, `due` or `is_negative`).

mod abandon;
mod edit;
mod regenerate;
mod rephrase;

use std::time::{Duration, Instant};

use closedloop_store::records::SessionTurn;
use closedloop_store::{Connection, Direction, StoreError};
use closedloop_tracing::{queries_contrast, query_similarity, Fingerprint, SemanticFingerprint};

use serde::Deserialize;

pub use abandon::AbandonDetectorConfig;
pub use edit::EditDetectorConfig;
pub use regenerate::RegenerateDetectorConfig;
pub use rephrase::{QueryComparison, RephraseDetectorConfig};

use crate::join::Tx;
use crate::records::{Feedback, Response, SpanRef};
use crate::rules;
use crate::vocab::{FeedbackKind, FeedbackSignal, FeedbackSource};

/// The `[detectors]` section: implicit signals read from behaviour. Thumbs are rare and
/// self-selected; these detectors write feedback (`closedloop.feedback.source` = `detector`,
/// kind `implicit`) that goes through the same join and failure-record rules as explicit
/// feedback. Everything works with content capture off (query fingerprints only).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    /// The next query of a session asks the previous one again in other words
    /// (`[detectors.rephrase]`).
    #[serde(default)]
    pub rephrase: RephraseDetectorConfig,
    /// The next query of a session is the previous one again (`[detectors.regenerate]`).
    #[serde(default)]
    pub regenerate: RegenerateDetectorConfig,
    /// A session went quiet after its last response (`[detectors.abandon]`).
    #[serde(default)]
    pub abandon: AbandonDetectorConfig,
    /// The user changed much of an answer before using it (`[detectors.edit]`).
    #[serde(default)]
    pub edit: EditDetectorConfig,
}

const fn default_true() -> bool {
    true
}

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
    semantic_fingerprint: Option<String>,
    text: Option<String>,
    response_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
}

/// The turns a response is paired with: the closest earlier and later responses of its
/// session, in other traces, that carried a query.
#[derive(Clone, Debug, Default)]
pub(crate) struct Neighbours {
    previous: Option<Turn>,
    next: Option<Turn>,
}

impl Turn {
    /// The turn of a response being indexed.
    fn arriving(response: &Response, span: SpanRef, session_id: &str) -> Self {
        Turn {
            span,
            start_ns: response.start_unix_nano as i64,
            end_ns: response.end_unix_nano.max(response.start_unix_nano) as i64,
            fingerprint: response.fingerprint.clone(),
            semantic_fingerprint: response.semantic_fingerprint.clone(),
            // The text of this span is at hand even when the store does not keep content.
            text: response.content.query.clone(),
            response_id: response.response_id.clone(),
            session_id: Some(session_id.to_owned()),
            user_id: response.user_id.clone(),
        }
    }

    /// A stored turn of the session `session_id`.
    fn stored(found: SessionTurn, session_id: &str) -> Self {
        Turn {
            span: found.span,
            start_ns: found.start_ns,
            end_ns: found.end_ns,
            fingerprint: found.fingerprint,
            semantic_fingerprint: found.semantic_fingerprint,
            response_id: found.response_id,
            user_id: found.user_id,
            text: found.query,
            session_id: Some(session_id.to_owned()),
        }
    }

    fn has_query(&self) -> bool {
        self.fingerprint.is_some() || self.semantic_fingerprint.is_some() || self.text.is_some()
    }
}

/// How two consecutive queries compare: lexically by their texts when both are at hand, else
/// by their fingerprints; semantically when both carry a semantic fingerprint of one model.
fn compare(previous: &Turn, next: &Turn) -> Option<QueryComparison> {
    let texts = previous.text.as_deref().zip(next.text.as_deref());
    let text = texts.and_then(|(a, b)| query_similarity(a, b));
    let fingerprints = (|| {
        let a: Fingerprint = previous.fingerprint.as_deref()?.parse().ok()?;
        let b: Fingerprint = next.fingerprint.as_deref()?.parse().ok()?;
        Some((a, b))
    })();
    let lexical = text.or_else(|| {
        let (a, b) = fingerprints.as_ref()?;
        a.similarity(b)
    });
    let contrast = match (texts, &fingerprints) {
        (Some((a, b)), _) => queries_contrast(a, b),
        (None, Some((a, b))) => a.contrasts(b),
        (None, None) => false,
    };
    let semantic = (|| {
        let a: SemanticFingerprint = previous.semantic_fingerprint.as_deref()?.parse().ok()?;
        let b: SemanticFingerprint = next.semantic_fingerprint.as_deref()?.parse().ok()?;
        a.similarity(&b)
    })();
    (lexical.is_some() || semantic.is_some()).then_some(QueryComparison {
        lexical,
        from_text: text.is_some(),
        semantic,
        contrast,
    })
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
        rules::is_negative_with(
            feedback.signal,
            feedback.value,
            feedback.category,
            self.config.edit.negative_below(),
        )
    }

    /// The session neighbours [`Detectors::on_response`] pairs each of `responses` with,
    /// read from the store at once (one statement per direction on PostgreSQL), in order.
    /// Read once every response of a request is indexed, so a turn's neighbours are the same
    /// whatever order the request listed them in.
    pub(crate) fn neighbours(
        &self,
        conn: &mut Connection,
        responses: &[(&Response, SpanRef)],
    ) -> Result<Vec<Neighbours>, StoreError> {
        let mut found = vec![Neighbours::default(); responses.len()];
        if !(self.config.rephrase.enabled || self.config.regenerate.enabled) {
            return Ok(found);
        }
        // The responses that pair: in a session, with a query.
        let mut asked: Vec<usize> = Vec::new();
        let mut turns: Vec<(&str, i64, [u8; 16])> = Vec::new();
        for (i, (response, span)) in responses.iter().enumerate() {
            let Some(session_id) = response.session_id.as_deref() else {
                continue;
            };
            let turn = Turn::arriving(response, *span, session_id);
            if turn.has_query() {
                asked.push(i);
                turns.push((session_id, turn.start_ns, span.trace_id));
            }
        }
        let previous = conn.session_neighbours(&turns, Direction::Previous)?;
        let next = conn.session_neighbours(&turns, Direction::Next)?;
        for (((i, previous), next), (session_id, _, _)) in
            asked.into_iter().zip(previous).zip(next).zip(&turns)
        {
            found[i] = Neighbours {
                previous: previous.map(|turn| Turn::stored(turn, session_id)),
                next: next.map(|turn| Turn::stored(turn, session_id)),
            };
        }
        Ok(found)
    }

    /// A response span was indexed for the first time: pairs it with its session's previous
    /// and next turns (`neighbours`, from [`Detectors::neighbours`]) and makes it its
    /// session's abandon candidate. Returns the feedback to record.
    pub(crate) fn on_response(
        &mut self,
        w: &mut Tx<'_>,
        response: &Response,
        span: SpanRef,
        neighbours: Neighbours,
    ) -> Result<Vec<Feedback>, StoreError> {
        let Some(session_id) = response.session_id.as_deref() else {
            return Ok(Vec::new());
        };
        let mut emitted = Vec::new();
        let turn = Turn::arriving(response, span, session_id);
        let pairs = self.config.rephrase.enabled || self.config.regenerate.enabled;
        if pairs && turn.has_query() {
            if let Some(previous) = &neighbours.previous {
                emitted.extend(self.judge_pair(w.conn, previous, &turn)?);
            }
            if let Some(next) = &neighbours.next {
                emitted.extend(self.judge_pair(w.conn, &turn, next)?);
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
        let Some(comparison) = compare(previous, next) else {
            return Ok(None);
        };
        let gap = Duration::from_nanos(next.start_ns.saturating_sub(previous.end_ns).max(0) as u64);
        let regenerated = comparison
            .lexical
            .is_some_and(|lexical| self.config.regenerate.judges(gap, lexical));
        let signal = if regenerated {
            FeedbackSignal::Regenerate
        } else if self.config.rephrase.judges(gap, &comparison) {
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
}

#[cfg(test)]
mod tests;
