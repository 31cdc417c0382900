//! The review queue: each day's sample (drawn once, with the seed recorded) and the
//! reviewers' labels.

use std::str::FromStr;

use closedloop_semconv::attribute::FailureCategory;

use crate::codec::decode_strings;
use crate::db::{values, Row};
use crate::error::Result;
use crate::records::SpanRef;
use crate::typed::{parse, parse_opt, span};
use crate::Connection;

/// Which part of a day's sample an item was drawn for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReviewStratum {
    /// A sample without stratification.
    Uniform,
    /// The share drawn from responses that got an implicit negative signal.
    ImplicitNegative,
    /// The rest of a stratified sample.
    Other,
}

impl ReviewStratum {
    /// The stored value (`uniform`, `implicit_negative`, `other`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::ImplicitNegative => "implicit_negative",
            Self::Other => "other",
        }
    }
}

impl FromStr for ReviewStratum {
    type Err = ();
    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "uniform" => Ok(Self::Uniform),
            "implicit_negative" => Ok(Self::ImplicitNegative),
            "other" => Ok(Self::Other),
            _ => Err(()),
        }
    }
}

/// A reviewer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewLabel {
    /// The response was good.
    Good,
    /// The response was bad.
    Bad,
}

impl ReviewLabel {
    /// The stored value (`good`, `bad`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
        }
    }
}

impl FromStr for ReviewLabel {
    type Err = ();
    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "good" => Ok(Self::Good),
            "bad" => Ok(Self::Bad),
            _ => Err(()),
        }
    }
}

/// A response a day's sample may draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewCandidate {
    /// The response's row, in arrival order.
    pub row: i64,
    /// The response span.
    pub key: SpanRef,
    /// Whether it got an implicit negative signal (rephrase, regenerate, abandon, a low
    /// edit) that was joined or recorded.
    pub implicit: bool,
}

/// The record of a sampled day.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewDay {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The seed that drew the sample.
    pub seed: u64,
    /// The sample size asked for.
    pub sample_size: u64,
    /// The share drawn from implicit negatives.
    pub implicit_share: f64,
    /// The day's responses.
    pub population: u64,
    /// When it was drawn, in Unix seconds.
    pub created_s: i64,
}

/// One item of the review queue with what is known of its response.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewRow {
    /// The queue id.
    pub id: i64,
    /// The day it was sampled from, `YYYY-MM-DD`.
    pub day: String,
    /// Which part of the sample drew it.
    pub stratum: ReviewStratum,
    /// The judged response span.
    pub key: SpanRef,
    /// When the response was received, in Unix seconds (when it is still stored).
    pub received_s: Option<i64>,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `closedloop.context.chunk_ids`.
    pub chunk_ids: Option<Vec<String>>,
    /// `closedloop.query.fingerprint`.
    pub fingerprint: Option<String>,
    /// The query text, when captured.
    pub query: Option<String>,
    /// The output messages, when captured.
    pub output: Option<String>,
    /// The label, once labelled.
    pub label: Option<ReviewLabel>,
    /// The category the reviewer gave.
    pub category: Option<FailureCategory>,
    /// The expected answer the reviewer gave.
    pub expected: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// Whether the response has a failure record.
    pub has_failure: bool,
    /// Who gave the label, when known.
    pub reviewer: Option<String>,
}

/// A sampled day and how far its review has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDayProgress {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The day's responses when it was sampled.
    pub population: u64,
    /// The items queued for the day.
    pub items: u64,
    /// The items labelled so far.
    pub labelled: u64,
}

/// A label as stored on a queue item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewLabelUpdate<'a> {
    /// The verdict.
    pub label: ReviewLabel,
    /// When, in Unix seconds.
    pub labelled_s: i64,
    /// The failure category, for a bad response.
    pub category: Option<FailureCategory>,
    /// What the answer should have been.
    pub expected: Option<&'a str>,
    /// A note for the team.
    pub note: Option<&'a str>,
    /// The reviewer feedback the label was stored as.
    pub feedback_id: &'a str,
    /// Who gave the label, when known (the console's signed-in user).
    pub reviewer: Option<&'a str>,
}

const ITEM_COLUMNS: &str = "SELECT q.id, q.day, q.stratum, q.trace_id, q.span_id, r.received_s,
        ti.value, tv.value, m.value, r.chunk_ids, r.fingerprint, c.query, c.output, q.label,
        q.category, q.expected, q.note, f.revision, q.reviewer
    FROM review_queue q
    LEFT JOIN responses r ON r.trace_id = q.trace_id AND r.span_id = q.span_id
    LEFT JOIN strings ti ON ti.id = r.template_id
    LEFT JOIN strings tv ON tv.id = r.template_version
    LEFT JOIN strings m ON m.id = r.model
    LEFT JOIN response_content c ON c.response = r.id
    LEFT JOIN failures f ON f.trace_id = q.trace_id AND f.span_id = q.span_id";

fn item(row: &Row<'_>) -> Result<ReviewRow> {
    Ok(ReviewRow {
        id: row.get(0)?,
        day: row.get(1)?,
        stratum: parse(row, 2, "a review stratum")?,
        key: span(row, 3)?,
        received_s: row.get(5)?,
        template_id: row.get(6)?,
        template_version: row.get(7)?,
        model: row.get(8)?,
        chunk_ids: row
            .get::<Option<Vec<u8>>>(9)?
            .map(|bytes| decode_strings(&bytes)),
        fingerprint: row.get(10)?,
        query: row.get(11)?,
        output: row.get(12)?,
        label: parse_opt(row, 13, "a review label")?,
        category: parse_opt(row, 14, "a failure category")?,
        expected: row.get(15)?,
        note: row.get(16)?,
        has_failure: row.get::<Option<i64>>(17)?.is_some(),
        reviewer: row.get(18)?,
    })
}

impl Connection {
    /// The seed recorded for `day` (`YYYY-MM-DD`), if it was sampled.
    pub fn review_day_seed(&mut self, day: &str) -> Result<Option<u64>> {
        Ok(self
            .db
            .query_value::<i64>("SELECT seed FROM review_days WHERE day = ?1", values![day])?
            .map(|seed| seed as u64))
    }

    /// Whether any response was received in `from_s..to_s`.
    pub fn has_responses_between(&mut self, from_s: i64, to_s: i64) -> Result<bool> {
        self.db.exists(
            "SELECT 1 FROM responses WHERE received_s >= ?1 AND received_s < ?2 LIMIT 1",
            values![from_s, to_s],
        )
    }

    /// The responses received in `from_s..to_s`, in arrival order.
    pub fn review_candidates(&mut self, from_s: i64, to_s: i64) -> Result<Vec<ReviewCandidate>> {
        self.db.query(
            "SELECT r.id, r.trace_id, r.span_id, CASE WHEN EXISTS (
                 SELECT 1 FROM feedback f
                 WHERE f.target_trace_id = r.trace_id AND f.target_span_id = r.span_id
                   AND f.kind = 'implicit' AND f.state IN (1, 2)) THEN 1 ELSE 0 END
             FROM responses r WHERE r.received_s >= ?1 AND r.received_s < ?2 ORDER BY r.id",
            values![from_s, to_s],
            |row| {
                Ok(ReviewCandidate {
                    row: row.get(0)?,
                    key: span(row, 1)?,
                    implicit: row.get(3)?,
                })
            },
        )
    }

    /// Records that `day.day` was sampled; `false` when it was already (by this receiver or
    /// another on the same store). Run in the transaction that queues the sample: the
    /// transaction whose claim succeeds is the one that draws.
    pub fn claim_review_day(&mut self, day: &ReviewDay) -> Result<bool> {
        let claimed = self.db.execute(
            "INSERT INTO review_days (day, seed, sample_size, implicit_share, population,
                created_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (day) DO NOTHING",
            values![
                &day.day,
                day.seed as i64,
                day.sample_size.min(i64::MAX as u64) as i64,
                day.implicit_share,
                day.population.min(i64::MAX as u64) as i64,
                day.created_s,
            ],
        )?;
        Ok(claimed > 0)
    }

    /// Queues the response `key` for review; `false` when it is queued already (from any
    /// day).
    pub fn queue_review_item(
        &mut self,
        day: &str,
        key: SpanRef,
        stratum: ReviewStratum,
        now_s: i64,
    ) -> Result<bool> {
        let queued = self.db.execute(
            "INSERT INTO review_queue (day, trace_id, span_id, stratum, created_s)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (trace_id, span_id) DO NOTHING",
            values![day, &key.trace_id, &key.span_id, stratum.as_str(), now_s],
        )?;
        Ok(queued > 0)
    }

    /// The queue items, oldest first: only `day`'s when given, only unlabelled ones when
    /// `unlabelled`.
    pub fn review_items(&mut self, day: Option<&str>, unlabelled: bool) -> Result<Vec<ReviewRow>> {
        let unlabelled = if unlabelled {
            " AND q.label IS NULL"
        } else {
            ""
        };
        match day {
            Some(day) => self.db.query(
                &format!("{ITEM_COLUMNS} WHERE q.day = ?1{unlabelled} ORDER BY q.id"),
                values![day],
                item,
            ),
            None => self.db.query(
                &format!("{ITEM_COLUMNS} WHERE 1 = 1{unlabelled} ORDER BY q.id"),
                values![],
                item,
            ),
        }
    }

    /// The queue item `id`.
    pub fn review_item(&mut self, id: i64) -> Result<Option<ReviewRow>> {
        self.db.query_opt(
            &format!("{ITEM_COLUMNS} WHERE q.id = ?1"),
            values![id],
            item,
        )
    }

    /// The sampled days, newest first, each with its count of items and of labelled items.
    pub fn review_day_progress(&mut self) -> Result<Vec<ReviewDayProgress>> {
        self.db.query(
            "SELECT d.day, d.population, COUNT(q.id), COUNT(q.label)
             FROM review_days d LEFT JOIN review_queue q ON q.day = d.day
             GROUP BY d.day, d.population ORDER BY d.day DESC",
            values![],
            |row| {
                Ok(ReviewDayProgress {
                    day: row.get(0)?,
                    population: row.get::<i64>(1)?.max(0) as u64,
                    items: row.get::<i64>(2)?.max(0) as u64,
                    labelled: row.get::<i64>(3)?.max(0) as u64,
                })
            },
        )
    }

    /// The response span of queue item `id`.
    pub fn review_target(&mut self, id: i64) -> Result<Option<SpanRef>> {
        self.db.query_opt(
            "SELECT trace_id, span_id FROM review_queue WHERE id = ?1",
            values![id],
            |row| span(row, 0),
        )
    }

    /// Stores the label of queue item `id`; `false` when there is no such item.
    pub fn set_review_label(&mut self, id: i64, label: &ReviewLabelUpdate<'_>) -> Result<bool> {
        let changed = self.db.execute(
            "UPDATE review_queue SET label = ?2, labelled_s = ?3, category = ?4, expected = ?5,
                note = ?6, feedback_id = ?7, reviewer = ?8
             WHERE id = ?1",
            values![
                id,
                label.label.as_str(),
                label.labelled_s,
                label.category.map(FailureCategory::as_str),
                label.expected,
                label.note,
                label.feedback_id,
                label.reviewer,
            ],
        )?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{
        both_engines, insert_failure, insert_feedback, insert_response, key, Failure, Response,
    };

    fn day(name: &str, seed: u64) -> ReviewDay {
        ReviewDay {
            day: name.into(),
            seed,
            sample_size: 2,
            implicit_share: 0.5,
            population: 3,
            created_s: 1_000,
        }
    }

    pub(crate) fn candidates_of_a_day(conn: &mut Connection) {
        for (n, received_s) in [(1, 100), (2, 200), (3, 86_400), (4, 50)] {
            insert_response(
                conn,
                key(n),
                &Response {
                    received_s,
                    ..Response::default()
                },
            );
        }
        // Implicit and joined; implicit but still waiting; explicit.
        insert_feedback(conn, "a", key(2), "implicit", "rephrase", 1, 300);
        insert_feedback(conn, "b", key(1), "implicit", "rephrase", 0, 300);
        insert_feedback(conn, "c", key(4), "explicit", "thumbs_down", 1, 300);
        let candidates = conn.review_candidates(0, 86_400).unwrap();
        let got: Vec<(SpanRef, bool)> = candidates.iter().map(|c| (c.key, c.implicit)).collect();
        assert_eq!(got, vec![(key(1), false), (key(2), true), (key(4), false)]);
        assert!(candidates.windows(2).all(|pair| pair[0].row < pair[1].row));
        assert!(conn.has_responses_between(86_400, 2 * 86_400).unwrap());
        assert!(!conn.has_responses_between(2 * 86_400, 3 * 86_400).unwrap());
    }

    pub(crate) fn a_day_is_claimed_once(conn: &mut Connection) {
        assert_eq!(conn.review_day_seed("2026-01-02").unwrap(), None);
        let mut tx = conn.transaction().unwrap();
        assert!(tx.claim_review_day(&day("2026-01-02", u64::MAX)).unwrap());
        assert!(tx
            .queue_review_item("2026-01-02", key(1), ReviewStratum::ImplicitNegative, 1_000)
            .unwrap());
        // A response is queued once, whatever the day.
        assert!(!tx
            .queue_review_item("2026-01-02", key(1), ReviewStratum::Other, 1_000)
            .unwrap());
        tx.commit().unwrap();
        assert!(!conn.claim_review_day(&day("2026-01-02", 7)).unwrap());
        // The seed round-trips through the signed column.
        assert_eq!(conn.review_day_seed("2026-01-02").unwrap(), Some(u64::MAX));
        // A claim rolled back leaves the day free.
        let mut tx = conn.transaction().unwrap();
        assert!(tx.claim_review_day(&day("2026-01-03", 5)).unwrap());
        drop(tx);
        assert_eq!(conn.review_day_seed("2026-01-03").unwrap(), None);
    }

    pub(crate) fn items_and_labels(conn: &mut Connection) {
        insert_response(
            conn,
            key(1),
            &Response {
                received_s: 100,
                template_id: Some("answer"),
                template_version: Some("v3"),
                model: Some("gpt-x"),
                chunk_ids: Some(vec!["kb#1".into(), "kb#2".into()]),
                fingerprint: Some("fp"),
                query: Some("how?"),
                output: Some("so."),
                ..Response::default()
            },
        );
        insert_failure(conn, &Failure::new(key(1), 100));
        conn.queue_review_item("2026-01-01", key(1), ReviewStratum::Uniform, 500)
            .unwrap();
        // A pruned response: the item stays, with what the queue knows.
        conn.queue_review_item("2026-01-02", key(2), ReviewStratum::Other, 600)
            .unwrap();
        let items = conn.review_items(None, false).unwrap();
        assert_eq!(items.len(), 2);
        let first = &items[0];
        assert_eq!(first.key, key(1));
        assert_eq!(first.stratum, ReviewStratum::Uniform);
        assert_eq!(first.received_s, Some(100));
        assert_eq!(first.template_id.as_deref(), Some("answer"));
        assert_eq!(first.template_version.as_deref(), Some("v3"));
        assert_eq!(first.model.as_deref(), Some("gpt-x"));
        assert_eq!(
            first.chunk_ids.as_deref(),
            Some(&["kb#1".to_owned(), "kb#2".to_owned()][..])
        );
        assert_eq!(first.query.as_deref(), Some("how?"));
        assert_eq!(first.output.as_deref(), Some("so."));
        assert!(first.has_failure);
        let second = &items[1];
        assert_eq!((second.received_s, second.has_failure), (None, false));
        assert_eq!(second.day, "2026-01-02");

        assert_eq!(conn.review_target(second.id).unwrap(), Some(key(2)));
        assert_eq!(conn.review_target(999).unwrap(), None);
        let update = ReviewLabelUpdate {
            label: ReviewLabel::Bad,
            labelled_s: 700,
            category: Some(FailureCategory::Hallucination),
            expected: Some("the right answer"),
            note: Some("made up"),
            feedback_id: "fb_review_1",
            reviewer: Some("ana"),
        };
        assert!(conn.set_review_label(second.id, &update).unwrap());
        assert!(!conn.set_review_label(999, &update).unwrap());
        let labelled = conn.review_item(second.id).unwrap().unwrap();
        assert_eq!(labelled.label, Some(ReviewLabel::Bad));
        assert_eq!(labelled.category, Some(FailureCategory::Hallucination));
        assert_eq!(labelled.expected.as_deref(), Some("the right answer"));
        assert_eq!(labelled.note.as_deref(), Some("made up"));
        assert_eq!(labelled.reviewer.as_deref(), Some("ana"));
        assert_eq!(conn.review_item(999).unwrap(), None);

        let unlabelled = conn.review_items(None, true).unwrap();
        assert_eq!(unlabelled.len(), 1);
        assert_eq!(unlabelled[0].id, first.id);
        assert_eq!(
            conn.review_items(Some("2026-01-02"), false).unwrap().len(),
            1
        );
        assert!(conn
            .review_items(Some("2026-01-02"), true)
            .unwrap()
            .is_empty());
    }

    pub(crate) fn progress_of_sampled_days(conn: &mut Connection) {
        assert!(conn.review_day_progress().unwrap().is_empty());
        let mut first = day("2026-01-01", 1);
        first.population = 40;
        conn.claim_review_day(&first).unwrap();
        conn.claim_review_day(&day("2026-01-02", 2)).unwrap();
        for n in 1..=3 {
            conn.queue_review_item("2026-01-01", key(n), ReviewStratum::Uniform, 500)
                .unwrap();
        }
        let labelled = conn.review_items(Some("2026-01-01"), false).unwrap()[1].id;
        let update = ReviewLabelUpdate {
            label: ReviewLabel::Good,
            labelled_s: 700,
            category: None,
            expected: None,
            note: None,
            feedback_id: "fb_review_1",
            reviewer: Some("ana"),
        };
        assert!(conn.set_review_label(labelled, &update).unwrap());
        let progress = |day: &str, population, items, labelled| ReviewDayProgress {
            day: day.into(),
            population,
            items,
            labelled,
        };
        // Newest first; a day whose sample drew nothing is listed with no items.
        assert_eq!(
            conn.review_day_progress().unwrap(),
            vec![
                progress("2026-01-02", 3, 0, 0),
                progress("2026-01-01", 40, 3, 1)
            ]
        );
    }

    /// Two receivers drawing the same day at once: the second claim waits for the first
    /// transaction and loses, so the day is drawn once.
    pub(crate) fn receivers_draw_a_day_once(first: &mut Connection, second: &mut Connection) {
        let mut tx = first.transaction().unwrap();
        assert!(tx.claim_review_day(&day("2026-01-02", 1)).unwrap());
        tx.queue_review_item("2026-01-02", key(1), ReviewStratum::Uniform, 1_000)
            .unwrap();
        let claimed = std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let mut tx = second.transaction().unwrap();
                let claimed = tx.claim_review_day(&day("2026-01-02", 2)).unwrap();
                if claimed {
                    tx.queue_review_item("2026-01-02", key(2), ReviewStratum::Uniform, 1_000)
                        .unwrap();
                    tx.commit().unwrap();
                }
                claimed
            });
            tx.commit().unwrap();
            other.join().unwrap()
        });
        assert!(!claimed);
        assert_eq!(first.review_day_seed("2026-01-02").unwrap(), Some(1));
        let items = first.review_items(Some("2026-01-02"), false).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key, key(1));
    }

    #[test]
    fn receivers_draw_a_day_once_on_postgres() {
        crate::testing::on_postgres_pair(
            concat!(module_path!(), "::receivers_draw_a_day_once_on_postgres"),
            receivers_draw_a_day_once,
        );
    }

    both_engines!(
        candidates_of_a_day,
        a_day_is_claimed_once,
        items_and_labels,
        progress_of_sampled_days,
    );
}
