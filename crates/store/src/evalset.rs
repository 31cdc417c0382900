//! What the eval set is built from: every failure record with its response and the latest
//! reviewer label.

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackSignal,
};

use crate::codec::decode_strings;
use crate::db::values;
use crate::error::Result;
use crate::records::SpanRef;
use crate::review::ReviewLabel;
use crate::typed::{parse, parse_list, parse_opt, span};
use crate::Connection;

/// A failure record with what the eval set takes from its response and review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalsetRecord {
    /// The judged span.
    pub key: SpanRef,
    /// When the record was created, in Unix seconds.
    pub created_s: i64,
    /// `closedloop.failure.category`.
    pub category: FailureCategory,
    /// `closedloop.failure.stage`.
    pub stage: FailureStage,
    /// `closedloop.failure.severity`.
    pub severity: FailureSeverity,
    /// `closedloop.failure.signals`, in order of arrival.
    pub signals: Vec<FeedbackSignal>,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `gen_ai.data_source.id`.
    pub data_source: Option<String>,
    /// `closedloop.context.chunk_ids`.
    pub chunk_ids: Option<Vec<String>>,
    /// `closedloop.query.fingerprint`.
    pub fingerprint: Option<String>,
    /// The query text, when captured.
    pub query: Option<String>,
    /// The output messages, when captured.
    pub output: Option<String>,
    /// The latest reviewer label of the response.
    pub label: Option<ReviewLabel>,
    /// The latest expected answer a reviewer gave.
    pub expected: Option<String>,
}

impl Connection {
    /// Every failure record, oldest first (then by id).
    pub fn evalset_records(&mut self) -> Result<Vec<EvalsetRecord>> {
        self.db.query(
            "SELECT f.trace_id, f.span_id, f.created_s, f.category, f.stage, f.severity,
                f.signals, ti.value, tv.value, m.value, ds.value, r.chunk_ids, r.fingerprint,
                c.query, c.output,
                (SELECT q.label FROM review_queue q
                 WHERE q.trace_id = f.trace_id AND q.span_id = f.span_id AND q.label IS NOT NULL
                 ORDER BY q.labelled_s DESC, q.id DESC LIMIT 1),
                (SELECT q.expected FROM review_queue q
                 WHERE q.trace_id = f.trace_id AND q.span_id = f.span_id
                   AND q.expected IS NOT NULL
                 ORDER BY q.labelled_s DESC, q.id DESC LIMIT 1)
             FROM failures f
             LEFT JOIN responses r ON r.trace_id = f.trace_id AND r.span_id = f.span_id
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             LEFT JOIN strings m ON m.id = r.model
             LEFT JOIN strings ds ON ds.id = r.data_source
             LEFT JOIN response_content c ON c.response = r.id
             ORDER BY f.created_s, f.trace_id, f.span_id",
            values![],
            |row| {
                Ok(EvalsetRecord {
                    key: span(row, 0)?,
                    created_s: row.get(2)?,
                    category: parse(row, 3, "a failure category")?,
                    stage: parse(row, 4, "a failure stage")?,
                    severity: parse(row, 5, "a failure severity")?,
                    signals: parse_list(row, 6, "feedback signals")?,
                    template_id: row.get(7)?,
                    template_version: row.get(8)?,
                    model: row.get(9)?,
                    data_source: row.get(10)?,
                    chunk_ids: row
                        .get::<Option<Vec<u8>>>(11)?
                        .map(|bytes| decode_strings(&bytes)),
                    fingerprint: row.get(12)?,
                    query: row.get(13)?,
                    output: row.get(14)?,
                    label: parse_opt(row, 15, "a review label")?,
                    expected: row.get(16)?,
                })
            },
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::{ReviewLabelUpdate, ReviewStratum};
    use crate::testing::{both_engines, insert_failure, insert_response, key, Failure, Response};

    pub(crate) fn records_with_response_and_latest_label(conn: &mut Connection) {
        insert_response(
            conn,
            key(1),
            &Response {
                received_s: 100,
                template_id: Some("answer"),
                template_version: Some("v2"),
                model: Some("gpt-x"),
                data_source: Some("kb"),
                chunk_ids: Some(vec!["kb#1".into()]),
                fingerprint: Some("mh64:00"),
                query: Some("how do I reset?"),
                output: Some("you cannot"),
            },
        );
        let mut first = Failure::new(key(1), 200);
        first.category = "wrong_answer";
        first.stage = "generation";
        first.severity = "high";
        first.signals = "thumbs_down,regenerate";
        insert_failure(conn, &first);
        insert_failure(conn, &Failure::new(key(2), 100));
        // Two labels of the same response, from two days: the later one counts.
        conn.queue_review_item("2026-01-01", key(1), ReviewStratum::Uniform, 300)
            .unwrap();
        let items = conn.review_items(None, false).unwrap();
        let label = |label, labelled_s, expected| ReviewLabelUpdate {
            label,
            labelled_s,
            category: None,
            expected,
            note: None,
            feedback_id: "fb",
            reviewer: None,
        };
        conn.set_review_label(items[0].id, &label(ReviewLabel::Good, 400, Some("old")))
            .unwrap();
        conn.set_review_label(items[0].id, &label(ReviewLabel::Bad, 500, Some("reset it")))
            .unwrap();

        let records = conn.evalset_records().unwrap();
        assert_eq!(records.len(), 2);
        let bare = &records[0];
        assert_eq!(bare.key, key(2));
        assert_eq!(
            (bare.template_id.as_ref(), bare.query.as_ref()),
            (None, None)
        );
        assert_eq!((bare.label, bare.expected.as_ref()), (None, None));
        let full = &records[1];
        assert_eq!(full.key, key(1));
        assert_eq!(full.created_s, 200);
        assert_eq!(full.category, FailureCategory::WrongAnswer);
        assert_eq!(full.stage, FailureStage::Generation);
        assert_eq!(full.severity, FailureSeverity::High);
        assert_eq!(
            full.signals,
            vec![FeedbackSignal::ThumbsDown, FeedbackSignal::Regenerate]
        );
        assert_eq!(full.template_id.as_deref(), Some("answer"));
        assert_eq!(full.template_version.as_deref(), Some("v2"));
        assert_eq!(full.model.as_deref(), Some("gpt-x"));
        assert_eq!(full.data_source.as_deref(), Some("kb"));
        assert_eq!(full.chunk_ids.as_deref(), Some(&["kb#1".to_owned()][..]));
        assert_eq!(full.fingerprint.as_deref(), Some("mh64:00"));
        assert_eq!(full.query.as_deref(), Some("how do I reset?"));
        assert_eq!(full.output.as_deref(), Some("you cannot"));
        assert_eq!(full.label, Some(ReviewLabel::Bad));
        assert_eq!(full.expected.as_deref(), Some("reset it"));
    }

    both_engines!(records_with_response_and_latest_label,);
}
