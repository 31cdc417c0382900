//! What the failure report reads: responses with their template version, chunks and failure
//! category, counts of feedback and failure records by signal, and the labelled review
//! sample with the signals each labelled response got.

use closedloop_semconv::attribute::{FailureCategory, FeedbackSignal, FeedbackSource};

use crate::codec::decode_strings;
use crate::db::values;
use crate::error::Result;
use crate::review::{ReviewLabel, ReviewStratum};
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
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `gen_ai.data_source.id`.
    pub data_source: Option<String>,
    /// `closedloop.retrieval.index.version`.
    pub index_version: Option<String>,
    /// `closedloop.context.chunk_ids` (empty when the span named none).
    pub chunk_ids: Vec<String>,
    /// The category of its failure record, if it has one.
    pub failure: Option<FailureCategory>,
    /// Whether it has a failure record with negative feedback from anyone but a reviewer:
    /// what the signals alone say of it, before any review. (Only responses with a record
    /// are looked up, so the pass costs about the same as without it.)
    pub signalled: bool,
}

/// A labelled item of the review queue whose response is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewedResponse {
    /// The response's row (as in [`ReportResponse::row`]).
    pub row: i64,
    /// When the response was received, in Unix seconds.
    pub received_s: i64,
    /// Which part of its day's sample drew it.
    pub stratum: ReviewStratum,
    /// The reviewer's verdict.
    pub label: ReviewLabel,
}

/// A feedback item, other than a reviewer's, on a labelled response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewedFeedback {
    /// The response's row (as in [`ReportResponse::row`]).
    pub row: i64,
    /// `closedloop.feedback.signal`.
    pub signal: FeedbackSignal,
    /// `closedloop.feedback.source`.
    pub source: FeedbackSource,
    /// Whether it counted as negative.
    pub negative: bool,
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
            "SELECT r.id, r.received_s, ti.value, tv.value, m.value, ds.value, iv.value,
                r.chunk_ids, f.category, CASE WHEN f.trace_id IS NULL THEN 0 WHEN EXISTS (
                    SELECT 1 FROM feedback fb
                    WHERE fb.target_trace_id = r.trace_id AND fb.target_span_id = r.span_id
                      AND fb.state IN (1, 2) AND fb.source <> 'reviewer') THEN 1 ELSE 0 END
             FROM responses r
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             LEFT JOIN strings m ON m.id = r.model
             LEFT JOIN strings ds ON ds.id = r.data_source
             LEFT JOIN strings iv ON iv.id = r.index_version
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
                    model: row.get(4)?,
                    data_source: row.get(5)?,
                    index_version: row.get(6)?,
                    chunk_ids: row
                        .get::<Option<Vec<u8>>>(7)?
                        .map(|bytes| decode_strings(&bytes))
                        .unwrap_or_default(),
                    failure: parse_opt(row, 8, "a failure category")?,
                    signalled: row.get(9)?,
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

    /// The labelled review items whose response was received at or after `since_s`, in
    /// response order.
    pub fn reviewed_responses(&mut self, since_s: i64) -> Result<Vec<ReviewedResponse>> {
        self.db.query(
            "SELECT r.id, r.received_s, q.stratum, q.label FROM review_queue q
             JOIN responses r ON r.trace_id = q.trace_id AND r.span_id = q.span_id
             WHERE q.label IS NOT NULL AND r.received_s >= ?1
             ORDER BY r.id",
            values![since_s],
            |row| {
                Ok(ReviewedResponse {
                    row: row.get(0)?,
                    received_s: row.get(1)?,
                    stratum: parse(row, 2, "a review stratum")?,
                    label: parse(row, 3, "a review label")?,
                })
            },
        )
    }

    /// The feedback, other than reviewers', on the labelled review items whose response was
    /// received at or after `since_s`, in response order: negative feedback joined to the
    /// response, and feedback that was only stored (positive) linking to it.
    pub fn reviewed_feedback(&mut self, since_s: i64) -> Result<Vec<ReviewedFeedback>> {
        self.db.query(
            "SELECT r.id, fb.signal, fb.source, fb.state, fb.id FROM review_queue q
             JOIN responses r ON r.trace_id = q.trace_id AND r.span_id = q.span_id
             JOIN feedback fb ON fb.target_trace_id = q.trace_id AND fb.target_span_id = q.span_id
             WHERE q.label IS NOT NULL AND r.received_s >= ?1 AND fb.source <> 'reviewer'
             UNION ALL
             SELECT r.id, fb.signal, fb.source, fb.state, fb.id FROM review_queue q
             JOIN responses r ON r.trace_id = q.trace_id AND r.span_id = q.span_id
             JOIN feedback fb ON fb.link_trace_id = q.trace_id AND fb.link_span_id = q.span_id
             WHERE q.label IS NOT NULL AND r.received_s >= ?1 AND fb.source <> 'reviewer'
               AND fb.target_trace_id IS NULL
             ORDER BY 1, 5",
            values![since_s],
            |row| {
                Ok(ReviewedFeedback {
                    row: row.get(0)?,
                    signal: parse(row, 1, "a feedback signal")?,
                    source: parse(row, 2, "a feedback source")?,
                    negative: matches!(row.get::<i64>(3)?, 1 | 2),
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

    pub(crate) fn the_labelled_sample(conn: &mut Connection) {
        use crate::review::ReviewLabelUpdate;
        for (n, model) in [(1, Some("gpt-x")), (2, None), (3, None), (4, None)] {
            insert_response(
                conn,
                key(n),
                &Response {
                    received_s: 100 * i64::from(n),
                    model,
                    data_source: model.map(|_| "kb"),
                    ..Response::default()
                },
            );
        }
        // Response 1: a user's thumbs-down and a detector's rephrase, then a reviewer's label
        // (stored as reviewer feedback, which is not a signal). Response 2: a copy (stored,
        // not negative). Response 3: nothing. Response 4: signalled, never reviewed.
        insert_feedback(conn, "a", key(1), "explicit", "thumbs_down", 1, 100);
        insert_feedback(conn, "b", key(2), "implicit", "copy", 3, 200);
        // Positive feedback is stored with its link, never joined.
        conn.db
            .execute(
                "UPDATE feedback SET target_trace_id = NULL, target_span_id = NULL
                 WHERE feedback_id = 'b'",
                values![],
            )
            .unwrap();
        insert_feedback(conn, "c", key(4), "explicit", "thumbs_down", 1, 400);
        // Joined negative feedback made records; response 3's is the reviewer's.
        for n in [1, 3, 4] {
            insert_failure(conn, &Failure::new(key(n), 500));
        }
        for (id, target, source, signal) in [
            ("d", key(1), "detector", "rephrase"),
            ("e", key(1), "reviewer", "thumbs_down"),
            ("f", key(3), "reviewer", "thumbs_down"),
        ] {
            conn.db
                .execute(
                    "INSERT INTO feedback (feedback_id, received_s, time_ns, target_trace_id,
                        target_span_id, state, signal, kind, source)
                     VALUES (?1, 500, 0, ?2, ?3, 1, ?4, 'implicit', ?5)",
                    values![id, &target.trace_id, &target.span_id, signal, source],
                )
                .unwrap();
        }
        let mut ids = Vec::new();
        for n in [1, 2, 3] {
            conn.queue_review_item("1970-01-01", key(n), ReviewStratum::Uniform, 500)
                .unwrap();
        }
        for item in conn.review_items(None, false).unwrap() {
            ids.push(item.id);
        }
        // Responses 1 and 3 are labelled bad, 2 good; 4 has no review item.
        for (id, label) in ids
            .iter()
            .zip([ReviewLabel::Bad, ReviewLabel::Good, ReviewLabel::Bad])
        {
            let update = ReviewLabelUpdate {
                label,
                labelled_s: 600,
                category: None,
                expected: None,
                note: None,
                feedback_id: "review",
                reviewer: None,
            };
            assert!(conn.set_review_label(*id, &update).unwrap());
        }

        let mut seen = Vec::new();
        conn.report_responses(0, |response| seen.push(response))
            .unwrap();
        let signalled: Vec<bool> = seen.iter().map(|response| response.signalled).collect();
        assert_eq!(signalled, vec![true, false, false, true]);
        assert_eq!(seen[0].model.as_deref(), Some("gpt-x"));
        assert_eq!(seen[0].data_source.as_deref(), Some("kb"));
        assert_eq!(seen[1].model, None);

        let reviewed = conn.reviewed_responses(0).unwrap();
        let labels: Vec<(i64, i64, ReviewLabel)> = reviewed
            .iter()
            .map(|r| (r.row, r.received_s, r.label))
            .collect();
        assert_eq!(
            labels,
            vec![
                (seen[0].row, 100, ReviewLabel::Bad),
                (seen[1].row, 200, ReviewLabel::Good),
                (seen[2].row, 300, ReviewLabel::Bad),
            ]
        );
        assert!(reviewed.iter().all(|r| r.stratum == ReviewStratum::Uniform));
        assert_eq!(conn.reviewed_responses(150).unwrap().len(), 2);

        let feedback = conn.reviewed_feedback(0).unwrap();
        assert_eq!(
            feedback,
            vec![
                ReviewedFeedback {
                    row: seen[0].row,
                    signal: FeedbackSignal::ThumbsDown,
                    source: FeedbackSource::User,
                    negative: true,
                },
                ReviewedFeedback {
                    row: seen[0].row,
                    signal: FeedbackSignal::Rephrase,
                    source: FeedbackSource::Detector,
                    negative: true,
                },
                ReviewedFeedback {
                    row: seen[1].row,
                    signal: FeedbackSignal::Copy,
                    source: FeedbackSource::User,
                    negative: false,
                },
            ]
        );
    }

    both_engines!(responses_and_counts, the_labelled_sample,);
}
