//! What the session detectors ask of the store: a response's neighbours in its session,
//! whether a response has feedback, and the abandon candidates (each session's latest
//! response, judged once its window passes).

use closedloop_semconv::attribute::FeedbackSignal;

use crate::connection::Connection;
use crate::db::values;
use crate::error::Result;
use crate::records::{AbandonCandidate, SessionTurn, SpanRef};
use crate::responses::span_ref;

/// Which neighbour of a response in its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The closest earlier response.
    Previous,
    /// The closest later response.
    Next,
}

impl Connection {
    /// The closest earlier (or later) response of `session_id` than `start_ns`, in another
    /// trace than `trace_id`, that carried a query (a fingerprint or its text).
    pub fn session_neighbour(
        &mut self,
        session_id: &str,
        start_ns: i64,
        trace_id: &[u8; 16],
        direction: Direction,
    ) -> Result<Option<SessionTurn>> {
        let sql = match direction {
            Direction::Previous => {
                "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us, r.fingerprint,
                    r.response_id, r.user_id, c.query, r.semantic_fingerprint
                 FROM responses r LEFT JOIN response_content c ON c.response = r.id
                 WHERE r.session_id = ?1 AND r.start_ns < ?2 AND r.trace_id <> ?3
                    AND (r.fingerprint IS NOT NULL OR r.semantic_fingerprint IS NOT NULL
                        OR c.query IS NOT NULL)
                 ORDER BY r.start_ns DESC LIMIT 1"
            }
            Direction::Next => {
                "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us, r.fingerprint,
                    r.response_id, r.user_id, c.query, r.semantic_fingerprint
                 FROM responses r LEFT JOIN response_content c ON c.response = r.id
                 WHERE r.session_id = ?1 AND r.start_ns > ?2 AND r.trace_id <> ?3
                    AND (r.fingerprint IS NOT NULL OR r.semantic_fingerprint IS NOT NULL
                        OR c.query IS NOT NULL)
                 ORDER BY r.start_ns ASC LIMIT 1"
            }
        };
        let found = self
            .db
            .query_opt(sql, values![session_id, start_ns, trace_id], |row| {
                let start_ns: i64 = row.get(2)?;
                let duration_us: i64 = row.get(3)?;
                Ok(span_ref(row.get(0)?, row.get(1)?).map(|span| SessionTurn {
                    span,
                    start_ns,
                    end_ns: start_ns.saturating_add(duration_us.saturating_mul(1_000)),
                    fingerprint: row.get(4).ok().flatten(),
                    response_id: row.get(5).ok().flatten(),
                    user_id: row.get(6).ok().flatten(),
                    query: row.get(7).ok().flatten(),
                    semantic_fingerprint: row.get(8).ok().flatten(),
                }))
            })?;
        Ok(found.flatten())
    }

    /// Whether any feedback names this response span (joined to it, or linking to it).
    pub fn has_feedback(&mut self, span: SpanRef) -> Result<bool> {
        let ids = values![&span.trace_id, &span.span_id];
        Ok(self.db.exists(
            "SELECT 1 FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2 LIMIT 1",
            ids,
        )? || self.db.exists(
            "SELECT 1 FROM feedback WHERE link_trace_id = ?1 AND link_span_id = ?2 LIMIT 1",
            ids,
        )?)
    }

    /// Whether this response span already has feedback with this signal.
    pub fn has_signal(&mut self, span: SpanRef, signal: FeedbackSignal) -> Result<bool> {
        let ids = values![&span.trace_id, &span.span_id, signal.as_str()];
        Ok(self.db.exists(
            "SELECT 1 FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2
                AND signal = ?3 LIMIT 1",
            ids,
        )? || self.db.exists(
            "SELECT 1 FROM feedback WHERE link_trace_id = ?1 AND link_span_id = ?2
                AND signal = ?3 LIMIT 1",
            ids,
        )?)
    }

    /// Whether the session has a response that started after `start_ns`.
    pub fn has_later_response(&mut self, session_id: &str, start_ns: i64) -> Result<bool> {
        self.db.exists(
            "SELECT 1 FROM responses WHERE session_id = ?1 AND start_ns > ?2 LIMIT 1",
            values![session_id, start_ns],
        )
    }

    /// Makes `span` (started at `start_ns`) the abandon candidate of `session_id`, due at
    /// `due_s`, unless the session's candidate is a later response already.
    pub fn set_abandon_candidate(
        &mut self,
        session_id: &str,
        span: SpanRef,
        start_ns: i64,
        due_s: i64,
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO abandon_candidates (session_id, trace_id, span_id, start_ns, due_s)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (session_id) DO UPDATE SET trace_id = excluded.trace_id,
                span_id = excluded.span_id, start_ns = excluded.start_ns,
                due_s = excluded.due_s
             WHERE excluded.start_ns >= abandon_candidates.start_ns",
            values![session_id, &span.trace_id, &span.span_id, start_ns, due_s],
        )?;
        Ok(())
    }

    /// Drops the abandon candidate that is this response span, if it is one.
    pub fn drop_abandon_candidate_span(&mut self, span: SpanRef) -> Result<()> {
        self.db.execute(
            "DELETE FROM abandon_candidates WHERE trace_id = ?1 AND span_id = ?2",
            values![&span.trace_id, &span.span_id],
        )?;
        Ok(())
    }

    /// Drops the abandon candidate of a session.
    pub fn drop_abandon_candidate(&mut self, session_id: &str) -> Result<()> {
        self.db.execute(
            "DELETE FROM abandon_candidates WHERE session_id = ?1",
            values![session_id],
        )?;
        Ok(())
    }

    /// Drops every abandon candidate (the abandon detector was turned off).
    pub fn clear_abandon_candidates(&mut self) -> Result<()> {
        self.db
            .execute("DELETE FROM abandon_candidates", values![])?;
        Ok(())
    }

    /// The abandon candidates due at `now_s`, earliest first, at most `limit`.
    pub fn due_abandon_candidates(
        &mut self,
        now_s: i64,
        limit: usize,
    ) -> Result<Vec<AbandonCandidate>> {
        self.db.query(
            "SELECT session_id, trace_id, span_id, start_ns FROM abandon_candidates
             WHERE due_s <= ?1 ORDER BY due_s LIMIT ?2",
            values![now_s, limit as i64],
            |row| {
                Ok(AbandonCandidate {
                    session_id: row.get(0)?,
                    span: span_ref(row.get(1)?, row.get(2)?),
                    start_ns: row.get(3)?,
                })
            },
        )
    }
}
