//! The abandon detector: a session went quiet after its last response.

use std::time::{Duration, Instant};

use closedloop_store::StoreError;
use serde::Deserialize;

use super::{detector_feedback_id, Detectors, Turn};
use crate::join::Tx;
use crate::records::Feedback;
use crate::vocab::{FeedbackKind, FeedbackSignal, FeedbackSource};

/// The most abandon candidates handled in one transaction; the rest wait for the next check.
const MAX_ABANDONS_PER_CHECK: usize = 1_000;

/// `[detectors.abandon]`: the last response of a session gets `abandon` feedback (negative,
/// weak) when the session shows no further activity (no further response, no feedback other
/// than from detectors) for `window_secs` after it arrived. A `copy` or `thumbs_up` (any
/// feedback) cancels it.
///
/// Off by default: a user who got the answer and left looks exactly like one who gave up, so
/// on help-desk traffic this marks many good answers. Turn it on where sessions normally end
/// with an action (copy, resolve, thumbs) and silence really means failure.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AbandonDetectorConfig {
    /// Whether the detector runs. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How long a session must stay quiet after its last response, in seconds. Default 1800.
    #[serde(default = "default_abandon_window_secs")]
    pub window_secs: u64,
    /// How often quiet sessions are looked for, in seconds. Default 60.
    #[serde(default = "default_abandon_check_interval_secs")]
    pub check_interval_secs: u64,
}

const fn default_abandon_window_secs() -> u64 {
    1800
}

const fn default_abandon_check_interval_secs() -> u64 {
    60
}

impl Default for AbandonDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            window_secs: default_abandon_window_secs(),
            check_interval_secs: default_abandon_check_interval_secs(),
        }
    }
}

impl Detectors {
    /// Makes `turn` its session's abandon candidate unless a later response is one already or
    /// the response already has feedback.
    pub(super) fn abandon_candidate(
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
