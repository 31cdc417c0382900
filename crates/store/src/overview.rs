//! What the console's overview reads: counts per UTC day (responses and failures per template
//! version, failures per category, negative feedback per signal), the open and overdue
//! records per owner, and review progress per sampled day. Each is one grouped statement.

use std::collections::BTreeMap;

use crate::db::values;
use crate::error::Result;
use crate::Connection;

/// A day and the interned template id and version of a group.
type GroupKey = (i64, Option<i64>, Option<i64>);

/// Seconds in a UTC day.
const DAY_SECS: i64 = 86_400;

/// Responses and failures of one template version on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayVersionCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// Responses received that day.
    pub responses: u64,
    /// Of those, responses with a failure record.
    pub failures: u64,
}

/// A count of one value (a category, a signal) on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// The value counted.
    pub value: String,
    /// How many.
    pub count: u64,
}

/// One owner's open and acknowledged records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerLoad {
    /// The owner (`None`: no owner).
    pub owner: Option<String>,
    /// Open records.
    pub open: u64,
    /// Acknowledged records.
    pub acknowledged: u64,
    /// Of both, those past their due time.
    pub overdue: u64,
}

/// The review progress of one sampled day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewProgress {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Items queued.
    pub items: u64,
    /// Of those, labelled.
    pub labelled: u64,
}

fn count(value: i64) -> u64 {
    value.max(0) as u64
}

impl Connection {
    /// Responses and failures per UTC day and template version, for responses received at or
    /// after `since_s`, by day. Responses and failures are counted by two grouped scans (the
    /// failures through the response they judge) rather than one join of every response.
    pub fn day_version_counts(&mut self, since_s: i64) -> Result<Vec<DayVersionCount>> {
        let grouped = |db: &mut crate::db::Db, sql: &str| {
            db.query(sql, values![since_s, DAY_SECS], |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<Option<i64>>(1)?,
                    row.get::<Option<i64>>(2)?,
                    count(row.get::<i64>(3)?),
                ))
            })
        };
        let responses = grouped(
            &mut self.db,
            "SELECT received_s / ?2, template_id, template_version, count(*)
             FROM responses WHERE received_s >= ?1
             GROUP BY received_s / ?2, template_id, template_version",
        )?;
        let failures = grouped(
            &mut self.db,
            // CROSS JOIN keeps SQLite's join order: the (fewer) failures outside, each finding
            // its response by the span index, rather than every response probing failures.
            "SELECT r.received_s / ?2, r.template_id, r.template_version, count(*)
             FROM failures f CROSS JOIN responses r
             WHERE r.trace_id = f.trace_id AND r.span_id = f.span_id AND r.received_s >= ?1
             GROUP BY r.received_s / ?2, r.template_id, r.template_version",
        )?;
        let mut merged: BTreeMap<GroupKey, (u64, u64)> = BTreeMap::new();
        for (day, id, version, n) in responses {
            merged.entry((day, id, version)).or_default().0 += n;
        }
        for (day, id, version, n) in failures {
            merged.entry((day, id, version)).or_default().1 += n;
        }
        let mut counts = Vec::with_capacity(merged.len());
        for ((day, id, version), (responses, failures)) in merged {
            counts.push(DayVersionCount {
                day,
                template_id: self.interned(id)?,
                template_version: self.interned(version)?,
                responses,
                failures,
            });
        }
        Ok(counts)
    }

    /// An interned string by its id.
    fn interned(&mut self, id: Option<i64>) -> Result<Option<String>> {
        match id {
            Some(id) => self
                .db
                .query_value::<String>("SELECT value FROM strings WHERE id = ?1", values![id]),
            None => Ok(None),
        }
    }

    /// Failure records created at or after `since_s`, per UTC day and category, by day.
    pub fn day_category_counts(&mut self, since_s: i64) -> Result<Vec<DayCount>> {
        self.db.query(
            "SELECT created_s / ?2, category, count(*) FROM failures WHERE created_s >= ?1
             GROUP BY created_s / ?2, category ORDER BY 1, 2",
            values![since_s, DAY_SECS],
            |row| {
                Ok(DayCount {
                    day: row.get(0)?,
                    value: row.get(1)?,
                    count: count(row.get(2)?),
                })
            },
        )
    }

    /// Negative feedback (waiting, joined or recorded: states 0-2) received at or after
    /// `since_s`, per UTC day and signal, by day.
    pub fn day_signal_counts(&mut self, since_s: i64) -> Result<Vec<DayCount>> {
        self.db.query(
            "SELECT received_s / ?2, signal, count(*) FROM feedback
             WHERE received_s >= ?1 AND state IN (0, 1, 2)
             GROUP BY received_s / ?2, signal ORDER BY 1, 2",
            values![since_s, DAY_SECS],
            |row| {
                Ok(DayCount {
                    day: row.get(0)?,
                    value: row.get(1)?,
                    count: count(row.get(2)?),
                })
            },
        )
    }

    /// The open and acknowledged records per owner, with those past their due time at
    /// `now_s`, the most overdue owner first.
    pub fn owner_loads(&mut self, now_s: i64) -> Result<Vec<OwnerLoad>> {
        self.db.query(
            "SELECT NULLIF(owner, ''),
                CAST(SUM(CASE WHEN triage_status = 'open' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN triage_status = 'acknowledged' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN due_s IS NOT NULL AND due_s <= ?1 THEN 1 ELSE 0 END)
                    AS BIGINT)
             FROM failures WHERE triage_status IN ('open', 'acknowledged')
             GROUP BY NULLIF(owner, '')
             ORDER BY 4 DESC, 2 DESC, 1",
            values![now_s],
            |row| {
                Ok(OwnerLoad {
                    owner: row.get(0)?,
                    open: count(row.get(1)?),
                    acknowledged: count(row.get(2)?),
                    overdue: count(row.get(3)?),
                })
            },
        )
    }

    /// The review progress of the `limit` most recent sampled days, newest first.
    pub fn review_progress(&mut self, limit: u32) -> Result<Vec<ReviewProgress>> {
        self.db.query(
            "SELECT d.day,
                (SELECT count(*) FROM review_queue q WHERE q.day = d.day),
                (SELECT count(*) FROM review_queue q WHERE q.day = d.day AND q.label IS NOT NULL)
             FROM review_days d ORDER BY d.day DESC LIMIT ?1",
            values![i64::from(limit)],
            |row| {
                Ok(ReviewProgress {
                    day: row.get(0)?,
                    items: count(row.get(1)?),
                    labelled: count(row.get(2)?),
                })
            },
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::{ReviewDay, ReviewLabel, ReviewLabelUpdate, ReviewStratum};
    use crate::testing::{
        both_engines, insert_failure, insert_feedback, insert_response, key, Failure, Response,
    };

    const DAY: i64 = 20_000;

    pub(crate) fn counts_per_day_and_version(conn: &mut Connection) {
        let at = |day: i64, hour: i64| day * DAY_SECS + hour * 3_600;
        let v1 = Response {
            template_id: Some("answer"),
            template_version: Some("v1"),
            ..Response::default()
        };
        let v2 = Response {
            template_version: Some("v2"),
            ..v1.clone()
        };
        let rows = [
            (1, &v1, at(DAY, 1), true),
            (2, &v1, at(DAY, 23), false),
            (3, &v2, at(DAY, 5), false),
            (4, &v1, at(DAY + 1, 0), true),
            (5, &v1, at(DAY - 1, 0), true),
        ];
        for (n, response, received_s, failed) in rows {
            let response = Response {
                received_s,
                ..response.clone()
            };
            insert_response(conn, key(n), &response);
            if failed {
                insert_failure(conn, &Failure::new(key(n), received_s + 10));
            }
        }
        // A failure whose response is not stored counts nowhere here.
        insert_failure(conn, &Failure::new(key(9), at(DAY, 2)));
        let counts = conn.day_version_counts(at(DAY, 0)).unwrap();
        let version = |day: i64, version: &str| {
            counts
                .iter()
                .find(|c| c.day == day && c.template_version.as_deref() == Some(version))
                .map(|c| (c.responses, c.failures))
        };
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert_eq!(version(DAY, "v1"), Some((2, 1)));
        assert_eq!(version(DAY, "v2"), Some((1, 0)));
        assert_eq!(version(DAY + 1, "v1"), Some((1, 1)));
        assert!(counts
            .iter()
            .all(|c| c.template_id.as_deref() == Some("answer")));

        let categories = conn.day_category_counts(at(DAY, 0)).unwrap();
        let total: u64 = categories.iter().map(|c| c.count).sum();
        assert_eq!(total, 3, "{categories:?}");
        assert_eq!(categories[0].value, "other");
    }

    pub(crate) fn negative_signals_per_day(conn: &mut Connection) {
        let day = DAY * DAY_SECS;
        insert_feedback(conn, "a", key(1), "explicit", "thumbs_down", 1, day + 10);
        insert_feedback(conn, "b", key(2), "explicit", "thumbs_down", 2, day + 20);
        insert_feedback(conn, "c", key(3), "explicit", "thumbs_up", 3, day + 30);
        insert_feedback(conn, "d", key(1), "implicit", "rephrase", 1, day + DAY_SECS);
        insert_feedback(conn, "e", key(1), "implicit", "rephrase", 1, day - 1);
        let signals = conn.day_signal_counts(DAY * DAY_SECS).unwrap();
        assert_eq!(
            signals,
            vec![
                DayCount {
                    day: DAY,
                    value: "thumbs_down".into(),
                    count: 2
                },
                DayCount {
                    day: DAY + 1,
                    value: "rephrase".into(),
                    count: 1
                },
            ]
        );
    }

    pub(crate) fn owners_and_overdue(conn: &mut Connection) {
        let mut records = Vec::new();
        for (n, owner, status, due_s) in [
            (1, Some("search"), "open", Some(50)),
            (2, Some("search"), "acknowledged", Some(500)),
            (3, Some("prompts"), "open", None),
            (4, None, "open", Some(10)),
            (5, Some("search"), "resolved", Some(10)),
        ] {
            let mut failure = Failure::new(key(n), 1);
            failure.owner = owner;
            failure.triage_status = status;
            failure.due_s = due_s;
            records.push(failure);
        }
        for failure in &records {
            insert_failure(conn, failure);
        }
        let loads = conn.owner_loads(100).unwrap();
        let load = |owner: Option<&str>| {
            loads
                .iter()
                .find(|load| load.owner.as_deref() == owner)
                .map(|load| (load.open, load.acknowledged, load.overdue))
        };
        assert_eq!(loads.len(), 3, "{loads:?}");
        assert_eq!(load(Some("search")), Some((1, 1, 1)));
        assert_eq!(load(Some("prompts")), Some((1, 0, 0)));
        assert_eq!(load(None), Some((1, 0, 1)));
    }

    pub(crate) fn review_progress_per_day(conn: &mut Connection) {
        for (day, keys) in [("2026-01-01", [1u8, 2]), ("2026-01-02", [3, 4])] {
            assert!(conn
                .claim_review_day(&ReviewDay {
                    day: day.into(),
                    seed: 1,
                    sample_size: 2,
                    implicit_share: 0.0,
                    population: 10,
                    created_s: 1,
                })
                .unwrap());
            for n in keys {
                conn.queue_review_item(day, key(n), ReviewStratum::Uniform, 1)
                    .unwrap();
            }
        }
        let items = conn.review_items(Some("2026-01-02"), false).unwrap();
        conn.set_review_label(
            items[0].id,
            &ReviewLabelUpdate {
                label: ReviewLabel::Good,
                labelled_s: 2,
                category: None,
                expected: None,
                note: None,
                feedback_id: "fb",
                reviewer: Some("ana"),
            },
        )
        .unwrap();
        let progress = conn.review_progress(10).unwrap();
        assert_eq!(
            progress,
            vec![
                ReviewProgress {
                    day: "2026-01-02".into(),
                    items: 2,
                    labelled: 1
                },
                ReviewProgress {
                    day: "2026-01-01".into(),
                    items: 2,
                    labelled: 0
                },
            ]
        );
        assert_eq!(conn.review_progress(1).unwrap().len(), 1);
    }

    both_engines!(
        counts_per_day_and_version,
        negative_signals_per_day,
        owners_and_overdue,
        review_progress_per_day
    );
}
