//! Triage: each failure record's owner, status and due time, the notes of its status
//! changes, and the SLA check.

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackSignal, TriageStatus,
};

use crate::db::values;
use crate::error::Result;
use crate::records::SpanRef;
use crate::typed::{parse, parse_list, span};
use crate::Connection;

/// The triage fields of a failure record, and when it was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageState {
    /// `closedloop.triage.owner`.
    pub owner: Option<String>,
    /// `closedloop.triage.status`.
    pub status: TriageStatus,
    /// `closedloop.triage.due_time`, in Unix seconds.
    pub due_s: Option<i64>,
    /// When the record was created, in Unix seconds.
    pub created_s: i64,
}

/// A failure record as the triage list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageRecord {
    /// The judged span.
    pub key: SpanRef,
    /// `closedloop.failure.category`.
    pub category: FailureCategory,
    /// `closedloop.failure.stage`.
    pub stage: FailureStage,
    /// `closedloop.failure.severity`.
    pub severity: FailureSeverity,
    /// `closedloop.failure.revision`.
    pub revision: i64,
    /// `closedloop.failure.signals`, in order of arrival.
    pub signals: Vec<FeedbackSignal>,
    /// `closedloop.triage.owner`.
    pub owner: Option<String>,
    /// `closedloop.triage.status`.
    pub status: TriageStatus,
    /// `closedloop.triage.due_time`, in Unix seconds.
    pub due_s: Option<i64>,
    /// When the record was created, in Unix seconds.
    pub created_s: i64,
}

/// A triage change of a record: a status change or a reassignment, with its note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageNote {
    /// When, in Unix seconds.
    pub time_s: i64,
    /// The status set (for a reassignment, the status the record kept).
    pub status: TriageStatus,
    /// The note, if any.
    pub note: Option<String>,
    /// Who made the change, when known (the console's signed-in user).
    pub actor: Option<String>,
    /// The owner set, for a reassignment.
    pub owner: Option<String>,
}

/// An open or acknowledged failure record past its due time, claimed for its one breach
/// notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlaBreach {
    /// The judged span.
    pub key: SpanRef,
    /// `closedloop.triage.owner`.
    pub owner: Option<String>,
    /// The due time it passed, in Unix seconds.
    pub due_s: i64,
    /// `closedloop.failure.category`.
    pub category: FailureCategory,
    /// `closedloop.failure.severity`.
    pub severity: FailureSeverity,
}

/// One owner's open and acknowledged records on the triage board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageLane {
    /// The owner (`None`: no owner, which an empty owner counts as).
    pub owner: Option<String>,
    /// Their open and acknowledged records.
    pub active: u64,
    /// Of those, the ones past their due time.
    pub overdue: u64,
}

/// The triage board: the open and acknowledged records counted by owner, and the most
/// urgent of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageBoard {
    /// Every owner with open or acknowledged records, in owner order.
    pub lanes: Vec<TriageLane>,
    /// The most urgent open and acknowledged records: those with a due time by due time
    /// (so the overdue first), then those without, newest first.
    pub records: Vec<TriageRecord>,
}

/// The columns [`triage_record`] reads.
const RECORD_COLUMNS: &str = "SELECT trace_id, span_id, category, stage, severity, revision,
    owner, triage_status, due_s, created_s, signals FROM failures";

fn triage_record(row: &crate::db::Row<'_>) -> Result<TriageRecord> {
    Ok(TriageRecord {
        key: span(row, 0)?,
        category: parse(row, 2, "a failure category")?,
        stage: parse(row, 3, "a failure stage")?,
        severity: parse(row, 4, "a failure severity")?,
        revision: row.get(5)?,
        owner: row.get(6)?,
        status: parse(row, 7, "a triage status")?,
        due_s: row.get(8)?,
        created_s: row.get(9)?,
        signals: parse_list(row, 10, "feedback signals")?,
    })
}

/// The statuses whose records can be overdue.
const ACTIVE: &str = "('open', 'acknowledged')";

impl Connection {
    /// The triage fields of the record `key`, if it exists.
    pub fn triage_state(&mut self, key: SpanRef) -> Result<Option<TriageState>> {
        self.db.query_opt(
            "SELECT owner, triage_status, due_s, created_s FROM failures
             WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id],
            |row| {
                Ok(TriageState {
                    owner: row.get(0)?,
                    status: parse(row, 1, "a triage status")?,
                    due_s: row.get(2)?,
                    created_s: row.get(3)?,
                })
            },
        )
    }

    /// Whether someone gave the record `key` to an owner by hand ([`Self::reassign_triage`]):
    /// routing then leaves its owner and due time alone.
    pub fn is_reassigned(&mut self, key: SpanRef) -> Result<bool> {
        Ok(self
            .db
            .query_value::<i64>(
                "SELECT id FROM triage_notes
                 WHERE trace_id = ?1 AND span_id = ?2 AND owner IS NOT NULL LIMIT 1",
                values![&key.trace_id, &key.span_id],
            )?
            .is_some())
    }

    /// Sets the owner and due time of the record `key`.
    pub fn set_triage_assignment(
        &mut self,
        key: SpanRef,
        owner: Option<&str>,
        due_s: Option<i64>,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE failures SET owner = ?3, due_s = ?4 WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id, owner, due_s],
        )?;
        Ok(())
    }

    /// Sets the status of the record `key` and keeps the change's note and who made it.
    /// `false` (and nothing written) when there is no such record.
    pub fn set_triage_status(
        &mut self,
        key: SpanRef,
        status: TriageStatus,
        now_s: i64,
        note: Option<&str>,
        actor: Option<&str>,
    ) -> Result<bool> {
        let changed = self.db.execute(
            "UPDATE failures SET triage_status = ?3 WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id, status.as_str()],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        self.db.execute(
            "INSERT INTO triage_notes (trace_id, span_id, time_s, status, note, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            values![
                &key.trace_id,
                &key.span_id,
                now_s,
                status.as_str(),
                note,
                actor
            ],
        )?;
        Ok(true)
    }

    /// Gives the record `key` to `owner` (its due time stays) and keeps the change's note and
    /// who made it. `false` (and nothing written) when there is no such record.
    pub fn reassign_triage(
        &mut self,
        key: SpanRef,
        owner: &str,
        now_s: i64,
        note: Option<&str>,
        actor: Option<&str>,
    ) -> Result<bool> {
        let changed = self.db.execute(
            "UPDATE failures SET owner = ?3 WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id, owner],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        self.db.execute(
            "INSERT INTO triage_notes (trace_id, span_id, time_s, status, note, actor, owner)
             SELECT trace_id, span_id, ?3, triage_status, ?4, ?5, ?6
             FROM failures WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id, now_s, note, actor, owner],
        )?;
        Ok(true)
    }

    /// Every failure record, the most urgent first (by due time, records without one last,
    /// then by id).
    pub fn triage_records(&mut self) -> Result<Vec<TriageRecord>> {
        self.db.query(
            &format!(
                "{RECORD_COLUMNS} ORDER BY CASE WHEN due_s IS NULL THEN 1 ELSE 0 END, due_s,
                    trace_id, span_id"
            ),
            values![],
            triage_record,
        )
    }

    /// The triage board at `now_s`: the open and acknowledged records counted by owner, and
    /// at most `limit` of them, the most urgent first. Bounded work: the counts read one
    /// index range, and the records are read in index order per status (by due time, then
    /// without one, newest first), `limit` at most from each.
    pub fn triage_board(&mut self, now_s: i64, limit: usize) -> Result<TriageBoard> {
        let lanes = self.db.query(
            &format!(
                "SELECT NULLIF(COALESCE(owner, ''), ''), count(*),
                    CAST(COALESCE(sum(CASE WHEN due_s <= ?1 THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM failures WHERE triage_status IN {ACTIVE}
                 GROUP BY COALESCE(owner, '') ORDER BY COALESCE(owner, '')"
            ),
            values![now_s],
            |row| {
                Ok(TriageLane {
                    owner: row.get(0)?,
                    active: row.get::<i64>(1)?.max(0) as u64,
                    overdue: row.get::<i64>(2)?.max(0) as u64,
                })
            },
        )?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut due = Vec::new();
        let mut undated = Vec::new();
        for status in [TriageStatus::Open, TriageStatus::Acknowledged] {
            due.extend(self.db.query(
                &format!(
                    "{RECORD_COLUMNS} WHERE triage_status = ?1 AND due_s IS NOT NULL
                     ORDER BY due_s, created_s LIMIT ?2"
                ),
                values![status.as_str(), limit],
                triage_record,
            )?);
            undated.extend(self.db.query(
                &format!(
                    "{RECORD_COLUMNS} WHERE triage_status = ?1 AND due_s IS NULL
                     ORDER BY created_s DESC LIMIT ?2"
                ),
                values![status.as_str(), limit],
                triage_record,
            )?);
        }
        due.sort_by_key(|record| (record.due_s, record.created_s, record.key));
        undated.sort_by_key(|record| (std::cmp::Reverse(record.created_s), record.key));
        let mut records = due;
        records.extend(undated);
        records.truncate(limit as usize);
        Ok(TriageBoard { lanes, records })
    }

    /// The notes of the record's status changes, oldest first.
    pub fn triage_notes(&mut self, key: SpanRef) -> Result<Vec<TriageNote>> {
        self.db.query(
            "SELECT time_s, status, note, actor, owner FROM triage_notes
             WHERE trace_id = ?1 AND span_id = ?2 ORDER BY id",
            values![&key.trace_id, &key.span_id],
            |row| {
                Ok(TriageNote {
                    time_s: row.get(0)?,
                    status: parse(row, 1, "a triage status")?,
                    note: row.get(2)?,
                    actor: row.get(3)?,
                    owner: row.get(4)?,
                })
            },
        )
    }

    /// The open and acknowledged records past their due time at `now_s`, counted by owner
    /// (`None`: no owner, which an empty owner counts as), in owner order.
    pub fn overdue_by_owner(&mut self, now_s: i64) -> Result<Vec<(Option<String>, u64)>> {
        self.db.query(
            &format!(
                "SELECT NULLIF(COALESCE(owner, ''), ''), count(*) FROM failures
                 WHERE triage_status IN {ACTIVE} AND due_s IS NOT NULL AND due_s <= ?1
                 GROUP BY COALESCE(owner, '')
                 ORDER BY COALESCE(owner, '')"
            ),
            values![now_s],
            |row| Ok((row.get(0)?, row.get::<i64>(1)?.max(0) as u64)),
        )
    }

    /// Claims the breaches not claimed before: marks every open or acknowledged record past
    /// its due time at `now_s` as notified and returns them, by due time then id. One
    /// conditional update claims them, so with several receivers on one store each breach
    /// is claimed (and notified) once.
    pub fn claim_sla_breaches(&mut self, now_s: i64) -> Result<Vec<SlaBreach>> {
        let mut breaches = self.db.query(
            &format!(
                "UPDATE failures SET breach_notified = 1
                 WHERE triage_status IN {ACTIVE} AND due_s IS NOT NULL AND due_s <= ?1
                   AND breach_notified = 0
                 RETURNING trace_id, span_id, owner, due_s, category, severity"
            ),
            values![now_s],
            |row| {
                Ok(SlaBreach {
                    key: span(row, 0)?,
                    owner: row.get(2)?,
                    due_s: row.get(3)?,
                    category: parse(row, 4, "a failure category")?,
                    severity: parse(row, 5, "a failure severity")?,
                })
            },
        )?;
        // RETURNING gives no order.
        breaches.sort_by_key(|breach| (breach.due_s, breach.key));
        Ok(breaches)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{both_engines, insert_failure, key, Failure};

    pub(crate) fn assignment_and_status(conn: &mut Connection) {
        let record = key(1);
        assert_eq!(conn.triage_state(record).unwrap(), None);
        assert!(!conn
            .set_triage_status(record, TriageStatus::Resolved, 10, None, None)
            .unwrap());
        insert_failure(conn, &Failure::new(record, 100));
        assert_eq!(
            conn.triage_state(record).unwrap(),
            Some(TriageState {
                owner: None,
                status: TriageStatus::Open,
                due_s: None,
                created_s: 100,
            })
        );
        conn.set_triage_assignment(record, Some("search-team"), Some(200))
            .unwrap();
        let tx = conn.transaction().unwrap();
        drop(tx);
        let mut tx = conn.transaction().unwrap();
        assert!(tx
            .set_triage_status(
                record,
                TriageStatus::Acknowledged,
                150,
                Some("looking"),
                Some("ana")
            )
            .unwrap());
        tx.commit().unwrap();
        // A transaction dropped without commit keeps nothing.
        let mut tx = conn.transaction().unwrap();
        tx.set_triage_status(record, TriageStatus::WontFix, 160, None, None)
            .unwrap();
        drop(tx);
        assert!(conn
            .set_triage_status(record, TriageStatus::Resolved, 170, None, None)
            .unwrap());
        assert!(conn
            .reassign_triage(record, "search-team", 180, Some("theirs"), Some("ana"))
            .unwrap());
        assert!(!conn
            .reassign_triage(key(2), "nobody", 180, None, None)
            .unwrap());
        assert!(conn.is_reassigned(record).unwrap());
        assert!(!conn.is_reassigned(key(2)).unwrap());
        let state = conn.triage_state(record).unwrap().unwrap();
        assert_eq!(state.owner.as_deref(), Some("search-team"));
        assert_eq!(state.status, TriageStatus::Resolved);
        assert_eq!(state.due_s, Some(200));
        assert_eq!(
            conn.triage_notes(record).unwrap(),
            vec![
                TriageNote {
                    time_s: 150,
                    status: TriageStatus::Acknowledged,
                    note: Some("looking".into()),
                    actor: Some("ana".into()),
                    owner: None,
                },
                TriageNote {
                    time_s: 170,
                    status: TriageStatus::Resolved,
                    note: None,
                    actor: None,
                    owner: None,
                },
                TriageNote {
                    time_s: 180,
                    status: TriageStatus::Resolved,
                    note: Some("theirs".into()),
                    actor: Some("ana".into()),
                    owner: Some("search-team".into()),
                },
            ]
        );
        assert!(conn.triage_notes(key(2)).unwrap().is_empty());
    }

    pub(crate) fn records_most_urgent_first(conn: &mut Connection) {
        let mut late = Failure::new(key(1), 100);
        late.due_s = Some(500);
        late.signals = "thumbs_down,rephrase";
        let mut soon = Failure::new(key(2), 100);
        soon.due_s = Some(300);
        soon.category = "missing_context";
        soon.stage = "retrieval";
        soon.severity = "high";
        let never = Failure::new(key(3), 100);
        for failure in [&never, &late, &soon] {
            insert_failure(conn, failure);
        }
        let records = conn.triage_records().unwrap();
        let keys: Vec<SpanRef> = records.iter().map(|record| record.key).collect();
        assert_eq!(keys, vec![key(2), key(1), key(3)]);
        assert_eq!(records[0].category, FailureCategory::MissingContext);
        assert_eq!(records[0].stage, FailureStage::Retrieval);
        assert_eq!(records[0].severity, FailureSeverity::High);
        assert_eq!(
            records[1].signals,
            vec![FeedbackSignal::ThumbsDown, FeedbackSignal::Rephrase]
        );
        assert_eq!(records[2].due_s, None);
    }

    pub(crate) fn each_breach_is_claimed_once(conn: &mut Connection) {
        let mut due = |n: u8, due_s: i64, owner: Option<&'static str>, status: &'static str| {
            let mut failure = Failure::new(key(n), 10);
            failure.due_s = Some(due_s);
            failure.owner = owner;
            failure.triage_status = status;
            insert_failure(conn, &failure);
        };
        due(1, 200, Some("a"), "open");
        due(2, 100, Some("a"), "acknowledged");
        due(3, 150, None, "open");
        due(4, 100, Some("b"), "resolved");
        due(5, 900, Some("b"), "open");
        assert_eq!(
            conn.overdue_by_owner(300).unwrap(),
            vec![(None, 1), (Some("a".into()), 2)]
        );
        let claimed = conn.claim_sla_breaches(300).unwrap();
        let keys: Vec<SpanRef> = claimed.iter().map(|breach| breach.key).collect();
        assert_eq!(keys, vec![key(2), key(3), key(1)]);
        assert_eq!(claimed[0].owner.as_deref(), Some("a"));
        assert_eq!(claimed[0].due_s, 100);
        assert_eq!(claimed[0].category, FailureCategory::Other);
        assert_eq!(claimed[0].severity, FailureSeverity::Medium);
        // Claimed once: the next check finds nothing new, though the records stay overdue.
        assert!(conn.claim_sla_breaches(300).unwrap().is_empty());
        assert_eq!(conn.overdue_by_owner(300).unwrap().len(), 2);
        let later = conn.claim_sla_breaches(1000).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].key, key(5));
    }

    /// Two receivers checking at once: each breach is claimed by one of them.
    pub(crate) fn receivers_claim_each_breach_once(
        first: &mut Connection,
        second: &mut Connection,
    ) {
        for n in 1..=3 {
            let mut failure = Failure::new(key(n), 10);
            failure.due_s = Some(100);
            insert_failure(first, &failure);
        }
        let mut tx = first.transaction().unwrap();
        let mine = tx.claim_sla_breaches(300).unwrap();
        assert_eq!(mine.len(), 3);
        let theirs = std::thread::scope(|scope| {
            // Waits for the first receiver's row locks, then finds the breaches claimed.
            let other = scope.spawn(|| second.claim_sla_breaches(300).unwrap());
            tx.commit().unwrap();
            other.join().unwrap()
        });
        assert!(theirs.is_empty(), "{theirs:?}");
    }

    #[test]
    fn receivers_claim_each_breach_once_on_postgres() {
        crate::testing::on_postgres_pair(
            concat!(
                module_path!(),
                "::receivers_claim_each_breach_once_on_postgres"
            ),
            receivers_claim_each_breach_once,
        );
    }

    /// Overdue records are counted once per owner, and no owner and an empty owner are one.
    pub(crate) fn overdue_counts_one_row_per_owner(conn: &mut Connection) {
        for (n, owner) in [
            (1, None),
            (2, Some("")),
            (3, Some("b")),
            (4, Some("a")),
            (5, Some("b")),
        ] {
            let mut failure = Failure::new(key(n), 10);
            failure.due_s = Some(100);
            failure.owner = owner;
            insert_failure(conn, &failure);
        }
        assert_eq!(
            conn.overdue_by_owner(300).unwrap(),
            [
                (None, 2),
                (Some("a".to_owned()), 1),
                (Some("b".to_owned()), 2)
            ]
        );
    }

    /// The board holds the open and acknowledged records only, the overdue first, then by
    /// due time, then those without one (newest first), and counts every one by owner.
    pub(crate) fn the_board_is_bounded_and_overdue_first(conn: &mut Connection) {
        let mut add = |n: u8, created_s: i64, due_s: Option<i64>, owner, status| {
            let mut failure = Failure::new(key(n), created_s);
            failure.due_s = due_s;
            failure.owner = owner;
            failure.triage_status = status;
            insert_failure(conn, &failure);
        };
        add(1, 10, Some(900), Some("a"), "open");
        add(2, 10, Some(100), Some("a"), "acknowledged");
        add(3, 20, None, None, "open");
        add(4, 30, None, Some("b"), "acknowledged");
        add(5, 10, Some(50), Some("b"), "resolved");
        add(6, 10, Some(200), Some("b"), "open");
        add(7, 10, Some(60), Some("a"), "wont_fix");
        let board = conn.triage_board(300, 10).unwrap();
        let keys: Vec<u8> = board.records.iter().map(|r| r.key.span_id[0]).collect();
        assert_eq!(keys, [2, 6, 1, 4, 3]);
        assert_eq!(
            board.lanes,
            [
                TriageLane {
                    owner: None,
                    active: 1,
                    overdue: 0
                },
                TriageLane {
                    owner: Some("a".into()),
                    active: 2,
                    overdue: 1
                },
                TriageLane {
                    owner: Some("b".into()),
                    active: 2,
                    overdue: 1
                },
            ]
        );
        let first = conn.triage_board(300, 2).unwrap();
        let keys: Vec<u8> = first.records.iter().map(|r| r.key.span_id[0]).collect();
        assert_eq!(keys, [2, 6]);
        assert_eq!(first.lanes.len(), 3, "the counts cover every record");
    }

    both_engines!(
        the_board_is_bounded_and_overdue_first,
        overdue_counts_one_row_per_owner,
        assignment_and_status,
        records_most_urgent_first,
        each_breach_is_claimed_once,
    );
}
