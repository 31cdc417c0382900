//! Feedback rows: stored on arrival, then joined to the response they judge.

use closedloop_semconv::attribute::{FailureCategory, FeedbackKind, FeedbackSignal};

use crate::connection::Connection;
use crate::db::{insert_id, values, Row, Value};
use crate::error::Result;
use crate::records::{Feedback, FeedbackState, NegativeRow, SpanRef, TraceId, WaitingRow};
use crate::responses::span_ref;
use crate::Engine;

/// A row of the waiting-room columns (`id, received_s, span_trace_id, span_span_id,
/// link_trace_id, link_span_id, response_id`).
fn waiting_row(row: &Row<'_>) -> Result<WaitingRow> {
    Ok(WaitingRow {
        row: row.get(0)?,
        received_s: row.get(1)?,
        span: span_ref(row.get(2)?, row.get(3)?),
        link: span_ref(row.get(4)?, row.get(5)?),
        response_id: row.get(6)?,
    })
}

impl Connection {
    /// Stores a feedback item; `None` when its idempotency id was seen before for the same
    /// judged response (the span it links to or, without one, its response id; see the
    /// schema's `feedback_idempotency` index), else the new row.
    pub fn insert_feedback(
        &mut self,
        feedback: &Feedback,
        received_s: i64,
        state: FeedbackState,
    ) -> Result<Option<i64>> {
        let span = feedback.span;
        let target = feedback.target;
        insert_id!(
            self.db,
            "INSERT INTO feedback (feedback_id, received_s, time_ns, span_trace_id,
                span_span_id, link_trace_id, link_span_id, response_id, state, signal, kind,
                value, category, source, comment, session_id, user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT DO NOTHING",
            values![
                &feedback.feedback_id,
                received_s,
                feedback.time_unix_nano as i64,
                span.as_ref().map(|span| &span.trace_id),
                span.as_ref().map(|span| &span.span_id),
                target.as_ref().map(|span| &span.trace_id),
                target.as_ref().map(|span| &span.span_id),
                feedback.response_id.as_deref(),
                state as i64,
                feedback.signal.as_str(),
                feedback.kind.as_str(),
                feedback.value,
                feedback.category.map(|category| category.as_str()),
                feedback.source.as_str(),
                feedback.comment.as_deref(),
                feedback.session_id.as_deref(),
                feedback.user_id.as_deref(),
            ],
        )
    }

    /// Attaches a feedback row to the failure record (judged span) it belongs to.
    pub fn set_feedback_target(
        &mut self,
        row: i64,
        target: SpanRef,
        state: FeedbackState,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE feedback SET target_trace_id = ?2, target_span_id = ?3, state = ?4 WHERE id = ?1",
            values![row, &target.trace_id, &target.span_id, state as i64],
        )?;
        Ok(())
    }

    /// Changes a feedback row's state only.
    pub fn set_feedback_state(&mut self, row: i64, state: FeedbackState) -> Result<()> {
        self.db.execute(
            "UPDATE feedback SET state = ?2 WHERE id = ?1",
            values![row, state as i64],
        )?;
        Ok(())
    }

    /// Every feedback row still waiting, oldest first (to rebuild the joiner after a restart).
    pub fn waiting_feedback(&mut self) -> Result<Vec<WaitingRow>> {
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE state = 0 ORDER BY id",
            values![],
            waiting_row,
        )
    }

    /// The negative feedback of the failure record keyed by `key`, oldest first. A signal
    /// this closedloop does not know (written by a newer one) is skipped.
    pub fn negatives(&mut self, key: SpanRef) -> Result<Vec<NegativeRow>> {
        let rows = self.db.query(
            "SELECT signal, kind, category, span_trace_id, span_span_id, time_ns, feedback_id
             FROM feedback
             WHERE target_trace_id = ?1 AND target_span_id = ?2 AND state IN (1, 2)
             ORDER BY id",
            values![&key.trace_id, &key.span_id],
            |row| {
                let signal: String = row.get(0)?;
                let Ok(signal) = signal.parse::<FeedbackSignal>() else {
                    return Ok(None);
                };
                let kind: String = row.get(1)?;
                let category: Option<String> = row.get(2)?;
                Ok(Some(NegativeRow {
                    feedback_id: row.get(6)?,
                    signal,
                    kind: kind.parse().unwrap_or(FeedbackKind::Explicit),
                    category: category
                        .and_then(|category| category.parse::<FailureCategory>().ok()),
                    span: span_ref(row.get(3)?, row.get(4)?),
                    time_ns: row.get(5)?,
                }))
            },
        )?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// The waiting feedback rows that name a span of trace `trace_id`, oldest first: once the
    /// trace has a response, each of them resolves to one (see the engine's join). On a store
    /// several receivers share, this is the waiting room (another receiver may have stored
    /// the feedback).
    pub fn waiting_in_trace(&mut self, trace_id: &TraceId) -> Result<Vec<WaitingRow>> {
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE link_trace_id = ?1 AND state = 0 ORDER BY id",
            values![trace_id],
            waiting_row,
        )
    }

    /// [`Connection::waiting_in_trace`] of every trace of `trace_ids`, oldest first: on
    /// PostgreSQL one statement for the list (a round trip per trace would bound a request's
    /// ingest by the network), on SQLite one per trace.
    pub fn waiting_in_traces(&mut self, trace_ids: &[TraceId]) -> Result<Vec<WaitingRow>> {
        if self.db.engine() == Engine::Sqlite || trace_ids.len() < 2 {
            return self.waiting_of_each(trace_ids, Self::waiting_in_trace);
        }
        let ids: Vec<&[u8]> = trace_ids.iter().map(|id| &id[..]).collect();
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE link_trace_id = ANY(?1) AND state = 0 ORDER BY id",
            &[Value::Blobs(&ids)],
            waiting_row,
        )
    }

    /// [`Connection::waiting_for_response_id`] of every id of `response_ids`, oldest first;
    /// batched as [`Connection::waiting_in_traces`].
    pub fn waiting_for_response_ids(&mut self, response_ids: &[&str]) -> Result<Vec<WaitingRow>> {
        if self.db.engine() == Engine::Sqlite || response_ids.len() < 2 {
            return self.waiting_of_each(response_ids, |conn, id| conn.waiting_for_response_id(id));
        }
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE state = 0 AND link_trace_id IS NULL AND response_id = ANY(?1)
             ORDER BY id",
            &[Value::Texts(response_ids)],
            waiting_row,
        )
    }

    /// The rows `read` finds for each of `keys`, oldest first: a list read one key at a time.
    fn waiting_of_each<K>(
        &mut self,
        keys: &[K],
        mut read: impl FnMut(&mut Self, &K) -> Result<Vec<WaitingRow>>,
    ) -> Result<Vec<WaitingRow>> {
        let mut rows = Vec::new();
        for key in keys {
            rows.extend(read(self, key)?);
        }
        rows.sort_by_key(|row| row.row);
        Ok(rows)
    }

    /// The waiting feedback rows that name no span but the `gen_ai.response.id`
    /// `response_id`, oldest first.
    pub fn waiting_for_response_id(&mut self, response_id: &str) -> Result<Vec<WaitingRow>> {
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE state = 0 AND link_trace_id IS NULL AND response_id = ?1
             ORDER BY id",
            values![response_id],
            waiting_row,
        )
    }

    /// The feedback rows still waiting that were received at or before `received_by_s`,
    /// oldest first, at most `limit`: those whose join window has passed.
    pub fn waiting_received_by(
        &mut self,
        received_by_s: i64,
        limit: usize,
    ) -> Result<Vec<WaitingRow>> {
        self.db.query(
            "SELECT id, received_s, span_trace_id, span_span_id, link_trace_id, link_span_id,
                response_id
             FROM feedback WHERE state = 0 AND received_s <= ?1 ORDER BY id LIMIT ?2",
            values![received_by_s, limit.min(i64::MAX as usize) as i64],
            waiting_row,
        )
    }

    /// Whether feedback row `row` is still waiting (it may have been joined by another
    /// receiver since it was read).
    pub fn is_waiting(&mut self, row: i64) -> Result<bool> {
        self.db.exists(
            "SELECT 1 FROM feedback WHERE id = ?1 AND state = 0",
            values![row],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{both_engines, insert_feedback, key};

    fn batched_waiting_reads_match_one_read_per_key(conn: &mut Connection) {
        insert_feedback(conn, "a", key(1), "explicit", "thumbs_down", 0, 10);
        insert_feedback(conn, "b", key(2), "explicit", "thumbs_down", 0, 11);
        insert_feedback(conn, "c", key(2), "explicit", "thumbs_down", 1, 12);
        insert_feedback(conn, "d", key(3), "explicit", "thumbs_down", 0, 13);
        for (feedback_id, response_id) in [("e", "resp-1"), ("f", "resp-2"), ("g", "resp-1")] {
            conn.db
                .execute(
                    "INSERT INTO feedback (feedback_id, received_s, time_ns, response_id, state,
                        signal, kind, source)
                     VALUES (?1, 20, 0, ?2, 0, 'thumbs_down', 'explicit', 'user')",
                    values![feedback_id, response_id],
                )
                .unwrap();
        }

        let traces = [
            key(3).trace_id,
            key(1).trace_id,
            key(2).trace_id,
            key(9).trace_id,
        ];
        let batched = conn.waiting_in_traces(&traces).unwrap();
        let mut one_by_one: Vec<WaitingRow> = Vec::new();
        for trace_id in &traces {
            one_by_one.extend(conn.waiting_in_trace(trace_id).unwrap());
        }
        one_by_one.sort_by_key(|row| row.row);
        assert_eq!(batched, one_by_one);
        let links: Vec<SpanRef> = batched.iter().filter_map(|row| row.link).collect();
        assert_eq!(
            links,
            [key(1), key(2), key(3)],
            "oldest first, joined rows left out"
        );

        let ids = ["resp-2", "resp-1", "resp-9"];
        let batched = conn.waiting_for_response_ids(&ids).unwrap();
        let named: Vec<&str> = batched
            .iter()
            .filter_map(|row| row.response_id.as_deref())
            .collect();
        assert_eq!(named, ["resp-1", "resp-2", "resp-1"]);
        assert!(conn.waiting_for_response_ids(&[]).unwrap().is_empty());
        assert!(conn.waiting_in_traces(&[]).unwrap().is_empty());
    }

    both_engines!(batched_waiting_reads_match_one_read_per_key);
}
