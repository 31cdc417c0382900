//! What the session detectors ask of the store: a response's neighbours in its session,
//! whether a response has feedback, and the abandon candidates (each session's latest
//! response, judged once its window passes).

use closedloop_semconv::attribute::FeedbackSignal;

use crate::connection::Connection;
use crate::db::{values, Row, Value};
use crate::error::Result;
use crate::records::{AbandonCandidate, SessionTurn, SpanRef};
use crate::responses::span_ref;
use crate::Engine;

/// Which neighbour of a response in its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The closest earlier response.
    Previous,
    /// The closest later response.
    Next,
}

/// A [`SessionTurn`] from the neighbour columns starting at `first`; `None` when its ids are
/// malformed.
fn session_turn(row: &Row<'_>, first: usize) -> Result<Option<SessionTurn>> {
    let start_ns: i64 = row.get(first + 2)?;
    let duration_us: i64 = row.get(first + 3)?;
    Ok(
        span_ref(row.get(first)?, row.get(first + 1)?).map(|span| SessionTurn {
            span,
            start_ns,
            end_ns: start_ns.saturating_add(duration_us.saturating_mul(1_000)),
            fingerprint: row.get(first + 4).ok().flatten(),
            response_id: row.get(first + 5).ok().flatten(),
            user_id: row.get(first + 6).ok().flatten(),
            query: row.get(first + 7).ok().flatten(),
            semantic_fingerprint: row.get(first + 8).ok().flatten(),
        }),
    )
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
        let found = self.session_neighbours(&[(session_id, start_ns, *trace_id)], direction)?;
        Ok(found.into_iter().next().flatten())
    }

    /// [`Connection::session_neighbour`] of every `(session_id, start_ns, trace_id)` of
    /// `turns`, in order: on PostgreSQL one statement for the list (a round trip per response
    /// would bound a request's ingest by the network), on SQLite one per turn.
    pub fn session_neighbours(
        &mut self,
        turns: &[(&str, i64, [u8; 16])],
        direction: Direction,
    ) -> Result<Vec<Option<SessionTurn>>> {
        // The candidates of one turn, as a subquery of the turn's session, start and trace.
        let (comparison, order) = match direction {
            Direction::Previous => ("<", "DESC"),
            Direction::Next => (">", "ASC"),
        };
        let neighbour = |session: &str, start: &str, trace: &str| {
            format!(
                "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us, r.fingerprint,
                    r.response_id, r.user_id, c.query, r.semantic_fingerprint
                 FROM responses r LEFT JOIN response_content c ON c.response = r.id
                 WHERE r.session_id = {session} AND r.start_ns {comparison} {start}
                    AND r.trace_id <> {trace}
                    AND (r.fingerprint IS NOT NULL OR r.semantic_fingerprint IS NOT NULL
                        OR c.query IS NOT NULL)
                 ORDER BY r.start_ns {order} LIMIT 1"
            )
        };
        if self.db.engine() == Engine::Sqlite || turns.len() < 2 {
            let sql = neighbour("?1", "?2", "?3");
            let mut found = Vec::with_capacity(turns.len());
            for (session_id, start_ns, trace_id) in turns {
                found.push(
                    self.db
                        .query_opt(&sql, values![*session_id, *start_ns, trace_id], |row| {
                            session_turn(row, 0)
                        })?
                        .flatten(),
                );
            }
            return Ok(found);
        }
        let sessions: Vec<&str> = turns.iter().map(|turn| turn.0).collect();
        let starts: Vec<i64> = turns.iter().map(|turn| turn.1).collect();
        let traces: Vec<&[u8]> = turns.iter().map(|turn| &turn.2[..]).collect();
        let sql = format!(
            "SELECT t.n, r.* FROM unnest(?1::TEXT[], ?2::BIGINT[], ?3::BYTEA[]) WITH ORDINALITY
                AS t(session_id, start_ns, trace_id, n)
             CROSS JOIN LATERAL ({}) AS r",
            neighbour("t.session_id", "t.start_ns", "t.trace_id")
        );
        let rows = self.db.query(
            &sql,
            &[
                Value::Texts(&sessions),
                Value::Ints(&starts),
                Value::Blobs(&traces),
            ],
            |row| Ok((row.get::<i64>(0)?, session_turn(row, 1)?)),
        )?;
        let mut found = vec![None; turns.len()];
        for (n, turn) in rows {
            if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| found.get_mut(i)) {
                *slot = turn;
            }
        }
        Ok(found)
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
