//! What the failure report reads: responses with their template version, chunks and failure
//! category, and counts of feedback and failure records by signal.

use closedloop_semconv::attribute::{FailureCategory, FeedbackSignal};

use crate::codec::decode_strings;
use crate::db::values;
use crate::error::Result;
use crate::typed::{parse, parse_list, parse_opt};
use crate::Connection;

/// A response as the report counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportResponse {
    /// The response's row, in arrival order.
    pub row: i64,
    /// When it was received, in Unix seconds.
    pub received_s: i64,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `closedloop.context.chunk_ids` (empty when the span named none).
    pub chunk_ids: Vec<String>,
    /// The category of its failure record, if it has one.
    pub failure: Option<FailureCategory>,
}

/// Feedback of one signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalCount {
    /// `closedloop.feedback.signal`.
    pub signal: FeedbackSignal,
    /// The feedback received.
    pub feedback: u64,
    /// How many of them were negative.
    pub negative: u64,
}

impl Connection {
    /// Calls `each` with every response received at or after `since_s`, in arrival order.
    pub fn report_responses(
        &mut self,
        since_s: i64,
        mut each: impl FnMut(ReportResponse),
    ) -> Result<()> {
        self.db.query(
            "SELECT r.id, r.received_s, ti.value, tv.value, r.chunk_ids, f.category
             FROM responses r
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             LEFT JOIN failures f ON f.trace_id = r.trace_id AND f.span_id = r.span_id
             WHERE r.received_s >= ?1
             ORDER BY r.id",
            values![since_s],
            |row| {
                each(ReportResponse {
                    row: row.get(0)?,
                    received_s: row.get(1)?,
                    template_id: row.get(2)?,
                    template_version: row.get(3)?,
                    chunk_ids: row
                        .get::<Option<Vec<u8>>>(4)?
                        .map(|bytes| decode_strings(&bytes))
                        .unwrap_or_default(),
                    failure: parse_opt(row, 5, "a failure category")?,
                });
                Ok(())
            },
        )?;
        Ok(())
    }

    /// The failure records created at or after `since_s` whose response is not stored.
    pub fn unattributed_failures(&mut self, since_s: i64) -> Result<u64> {
        let count = self.db.query_value::<i64>(
            "SELECT count(*) FROM failures f WHERE f.created_s >= ?1 AND NOT EXISTS (
                 SELECT 1 FROM responses r WHERE r.trace_id = f.trace_id AND r.span_id = f.span_id)",
            values![since_s],
        )?;
        Ok(count.unwrap_or(0).max(0) as u64)
    }

    /// The feedback received at or after `since_s`, counted by signal, in signal order.
    /// Negative feedback is feedback that was waiting, joined or recorded (states 0-2).
    pub fn feedback_by_signal(&mut self, since_s: i64) -> Result<Vec<SignalCount>> {
        self.db.query(
            "SELECT signal, count(*),
                CAST(COALESCE(SUM(CASE WHEN state IN (0, 1, 2) THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM feedback WHERE received_s >= ?1
             GROUP BY signal ORDER BY signal",
            values![since_s],
            |row| {
                Ok(SignalCount {
                    signal: parse(row, 0, "a feedback signal")?,
                    feedback: row.get::<i64>(1)?.max(0) as u64,
                    negative: row.get::<i64>(2)?.max(0) as u64,
                })
            },
        )
    }

    /// The signals of each failure record created at or after `since_s`.
    pub fn failure_signals(&mut self, since_s: i64) -> Result<Vec<Vec<FeedbackSignal>>> {
        self.db.query(
            "SELECT signals FROM failures WHERE created_s >= ?1",
            values![since_s],
            |row| parse_list(row, 0, "feedback signals"),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{
        both_engines, insert_failure, insert_feedback, insert_response, key, Failure, Response,
    };

    pub(crate) fn responses_and_counts(conn: &mut Connection) {
        insert_response(
            conn,
            key(1),
            &Response {
                received_s: 100,
                template_id: Some("answer"),
                template_version: Some("v1"),
                chunk_ids: Some(vec!["kb#1".into()]),
                ..Response::default()
            },
        );
        insert_response(
            conn,
            key(2),
            &Response {
                received_s: 200,
                ..Response::default()
            },
        );
        insert_response(
            conn,
            key(3),
            &Response {
                received_s: 10,
                ..Response::default()
            },
        );
        let mut failure = Failure::new(key(1), 150);
        failure.category = "hallucination";
        failure.signals = "thumbs_down,rephrase";
        insert_failure(conn, &failure);
        // A record whose response is gone.
        insert_failure(conn, &Failure::new(key(9), 160));
        insert_failure(conn, &Failure::new(key(8), 20));

        let mut seen = Vec::new();
        conn.report_responses(50, |response| seen.push(response))
            .unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].row < seen[1].row);
        assert_eq!(seen[0].received_s, 100);
        assert_eq!(seen[0].template_id.as_deref(), Some("answer"));
        assert_eq!(seen[0].template_version.as_deref(), Some("v1"));
        assert_eq!(seen[0].chunk_ids, vec!["kb#1".to_owned()]);
        assert_eq!(seen[0].failure, Some(FailureCategory::Hallucination));
        assert_eq!(seen[1].template_id, None);
        assert!(seen[1].chunk_ids.is_empty());
        assert_eq!(seen[1].failure, None);

        assert_eq!(conn.unattributed_failures(50).unwrap(), 1);
        assert_eq!(conn.unattributed_failures(0).unwrap(), 2);

        insert_feedback(conn, "a", key(1), "explicit", "thumbs_down", 1, 100);
        insert_feedback(conn, "b", key(2), "explicit", "thumbs_down", 3, 100);
        insert_feedback(conn, "c", key(2), "implicit", "rephrase", 0, 100);
        insert_feedback(conn, "d", key(3), "explicit", "thumbs_down", 1, 10);
        assert_eq!(
            conn.feedback_by_signal(50).unwrap(),
            vec![
                SignalCount {
                    signal: FeedbackSignal::Rephrase,
                    feedback: 1,
                    negative: 1,
                },
                SignalCount {
                    signal: FeedbackSignal::ThumbsDown,
                    feedback: 2,
                    negative: 1,
                },
            ]
        );
        assert!(conn.feedback_by_signal(1_000).unwrap().is_empty());
        let mut signals = conn.failure_signals(50).unwrap();
        signals.sort_by_key(Vec::len);
        assert_eq!(
            signals,
            vec![
                vec![FeedbackSignal::ThumbsDown],
                vec![FeedbackSignal::ThumbsDown, FeedbackSignal::Rephrase],
            ]
        );
    }

    both_engines!(responses_and_counts,);
}
