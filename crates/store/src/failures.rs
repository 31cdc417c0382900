//! Failure records: one per failing response, keyed by the judged span.

use std::collections::BTreeSet;

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
    TriageStatus,
};

use crate::connection::Connection;
use crate::db::{values, Row, Value};
use crate::error::Result;
use crate::records::{Content, FailureRow, FailureState, Response, SpanRef, TraceId};
use crate::typed::{parse, parse_list, span};

impl Connection {
    /// The stored state of the failure record keyed by `key`, if there is one.
    pub fn failure_state(&mut self, key: SpanRef) -> Result<Option<FailureState>> {
        self.db.query_opt(
            "SELECT revision, enriched FROM failures WHERE trace_id = ?1 AND span_id = ?2",
            values![&key.trace_id, &key.span_id],
            |row| {
                Ok(FailureState {
                    revision: row.get(0)?,
                    enriched: row.get(1)?,
                })
            },
        )
    }

    /// Writes a revision of a failure record: creates it, or updates its fields (an existing
    /// record keeps its creation time and triage fields).
    pub fn upsert_failure(&mut self, row: &FailureRow<'_>) -> Result<()> {
        self.db.execute(
            "INSERT INTO failures (trace_id, span_id, created_s, updated_s, category, stage,
                severity, signals, feedback_count, revision, enriched, triage_status)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (trace_id, span_id) DO UPDATE SET updated_s = excluded.updated_s,
                category = excluded.category, stage = excluded.stage,
                severity = excluded.severity, signals = excluded.signals,
                feedback_count = excluded.feedback_count, revision = excluded.revision,
                enriched = excluded.enriched",
            values![
                &row.key.trace_id,
                &row.key.span_id,
                row.now_s,
                row.category.as_str(),
                row.stage.as_str(),
                row.severity.as_str(),
                row.signals,
                row.feedback_count,
                row.revision,
                row.enriched,
                row.triage_status.as_str(),
            ],
        )?;
        Ok(())
    }
}

/// What caused a revision of a failure record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevisionCause<'a> {
    /// Negative feedback: the idempotency id of the record's newest.
    Feedback(&'a str),
    /// A triage change: the record's latest triage note, written in the same transaction.
    TriageNote,
}

/// One revision of a failure record, as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRevision {
    /// `closedloop.failure.revision`.
    pub revision: i64,
    /// When it was written, in Unix seconds.
    pub time_s: i64,
    /// Its category.
    pub category: FailureCategory,
    /// Its stage.
    pub stage: FailureStage,
    /// Its severity.
    pub severity: FailureSeverity,
    /// The triage status it carried.
    pub status: TriageStatus,
    /// The owner it carried.
    pub owner: Option<String>,
    /// The feedback that caused it (its idempotency id), for a revision made by feedback.
    pub feedback_id: Option<String>,
    /// The note of the triage change that caused it, if the change had one.
    pub note: Option<String>,
    /// Who made the triage change that caused it, when known.
    pub actor: Option<String>,
    /// Whether a triage change (a status change or a reassignment) caused it.
    pub by_triage: bool,
}

/// The trace ids a search for a trace id or its prefix covers: `low..=high`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceIdRange {
    /// The smallest trace id in the range.
    pub low: TraceId,
    /// The largest trace id in the range.
    pub high: TraceId,
}

impl TraceIdRange {
    /// The fewest hex digits a prefix search takes.
    pub const MIN_PREFIX: usize = 8;

    /// The trace ids starting with `hex` (case-insensitive): a whole trace id (32 digits) or
    /// a prefix of at least [`Self::MIN_PREFIX`] digits. `None` for anything else.
    pub fn from_hex_prefix(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() < Self::MIN_PREFIX
            || hex.len() > 32
            || !hex.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return None;
        }
        let padded = |fill: char| -> Option<TraceId> {
            let mut text = hex.to_ascii_lowercase();
            text.extend(std::iter::repeat_n(fill, 32 - hex.len()));
            let mut id = [0u8; 16];
            for (at, byte) in id.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[at * 2..at * 2 + 2], 16).ok()?;
            }
            Some(id)
        };
        Some(Self {
            low: padded('0')?,
            high: padded('f')?,
        })
    }
}

/// Where a page of the record list starts: after this record, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureCursor {
    /// The creation time of the last record of the previous page, in Unix seconds.
    pub created_s: i64,
    /// Its key.
    pub key: SpanRef,
}

/// Which failure records the record list shows. Every field set narrows it; the default
/// shows them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureFilter {
    /// Only this category.
    pub category: Option<FailureCategory>,
    /// Only this stage.
    pub stage: Option<FailureStage>,
    /// Only this severity.
    pub severity: Option<FailureSeverity>,
    /// Only this triage status.
    pub status: Option<TriageStatus>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only responses of this template (`closedloop.template.id`).
    pub template_id: Option<String>,
    /// Only responses of this template version (`closedloop.template.version`).
    pub template_version: Option<String>,
    /// Only responses of this model.
    pub model: Option<String>,
    /// Only responses of this retrieval data source.
    pub data_source: Option<String>,
    /// Only records created at or after this time, in Unix seconds.
    pub created_since_s: Option<i64>,
    /// Only records created before this time, in Unix seconds.
    pub created_until_s: Option<i64>,
    /// Only records of these traces.
    pub trace_ids: Option<TraceIdRange>,
    /// Only records older than this one (the next page).
    pub after: Option<FailureCursor>,
}

/// A failure record as the record list shows it, with its response's template, model and
/// data source when the response is indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureListRow {
    /// The judged span.
    pub key: SpanRef,
    /// When the record was created, in Unix seconds.
    pub created_s: i64,
    /// When its latest revision was written, in Unix seconds.
    pub updated_s: i64,
    /// `closedloop.failure.category`.
    pub category: FailureCategory,
    /// `closedloop.failure.stage`.
    pub stage: FailureStage,
    /// `closedloop.failure.severity`.
    pub severity: FailureSeverity,
    /// `closedloop.triage.status`.
    pub status: TriageStatus,
    /// `closedloop.triage.owner`.
    pub owner: Option<String>,
    /// `closedloop.triage.due_time`, in Unix seconds.
    pub due_s: Option<i64>,
    /// `closedloop.failure.revision`.
    pub revision: i64,
    /// How many negative feedback items it has.
    pub feedback_count: i64,
    /// `closedloop.failure.signals`, in order of arrival.
    pub signals: Vec<FeedbackSignal>,
    /// Whether it was written with its response's details.
    pub enriched: bool,
    /// Its response's `closedloop.template.id`.
    pub template_id: Option<String>,
    /// Its response's `closedloop.template.version`.
    pub template_version: Option<String>,
    /// Its response's model.
    pub model: Option<String>,
    /// Its response's retrieval data source.
    pub data_source: Option<String>,
}

/// A failure record with its response and the response's content, for the record page.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureDetail {
    /// The record.
    pub record: FailureListRow,
    /// Its response, when indexed, with its content when the store kept it.
    pub response: Option<Response>,
}

/// One feedback item joined to a failure record, as the record page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordFeedback {
    /// Its idempotency id.
    pub feedback_id: String,
    /// When it was given, in Unix nanoseconds.
    pub time_ns: i64,
    /// What it says.
    pub signal: FeedbackSignal,
    /// Explicit or implicit.
    pub kind: FeedbackKind,
    /// Who gave it.
    pub source: FeedbackSource,
    /// Its value, when it has one.
    pub value: Option<f64>,
    /// The category it names, if any.
    pub category: Option<FailureCategory>,
    /// Its comment, when it had one.
    pub comment: Option<String>,
}

/// The values the record list's filters offer, read from the newest records only (see
/// [`Connection::failure_facets`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureFacets {
    /// Owners.
    pub owners: Vec<String>,
    /// Template ids.
    pub template_ids: Vec<String>,
    /// Template versions.
    pub template_versions: Vec<String>,
    /// Models.
    pub models: Vec<String>,
    /// Data sources.
    pub data_sources: Vec<String>,
}

/// The columns [`list_row`] reads: the record's, then its response's interned strings.
const LIST_SELECT: &str = "SELECT f.trace_id, f.span_id, f.created_s, f.updated_s, f.category,
        f.stage, f.severity, f.triage_status, f.owner, f.due_s, f.revision, f.feedback_count,
        f.signals, f.enriched, ti.value, tv.value, m.value, ds.value
    FROM failures f";

/// The response's interned strings, joined to `r`.
const LIST_STRINGS: &str = "
    LEFT JOIN strings ti ON ti.id = r.template_id
    LEFT JOIN strings tv ON tv.id = r.template_version
    LEFT JOIN strings m ON m.id = r.model
    LEFT JOIN strings ds ON ds.id = r.data_source";

/// [`LIST_SELECT`] of every record, with its response when it is indexed.
fn list_columns() -> String {
    format!(
        "{LIST_SELECT}
    LEFT JOIN responses r ON r.trace_id = f.trace_id AND r.span_id = f.span_id{LIST_STRINGS}"
    )
}

fn list_row(row: &Row<'_>) -> Result<FailureListRow> {
    Ok(FailureListRow {
        key: span(row, 0)?,
        created_s: row.get(2)?,
        updated_s: row.get(3)?,
        category: parse(row, 4, "a failure category")?,
        stage: parse(row, 5, "a failure stage")?,
        severity: parse(row, 6, "a failure severity")?,
        status: parse(row, 7, "a triage status")?,
        owner: row.get(8)?,
        due_s: row.get(9)?,
        revision: row.get(10)?,
        feedback_count: row.get(11)?,
        signals: parse_list(row, 12, "feedback signals")?,
        enriched: row.get(13)?,
        template_id: row.get(14)?,
        template_version: row.get(15)?,
        model: row.get(16)?,
        data_source: row.get(17)?,
    })
}

/// A statement's text and values, built condition by condition.
struct Conditions<'a> {
    sql: String,
    values: Vec<Value<'a>>,
    any: bool,
}

impl<'a> Conditions<'a> {
    /// Adds `condition`, whose placeholders are written `?` and numbered here, one per value.
    fn and(&mut self, condition: &str, values: impl IntoIterator<Item = Value<'a>>) {
        self.sql
            .push_str(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        let mut values = values.into_iter();
        for part in condition.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(text) => {
                    self.sql.push_str(text);
                    let Some(value) = values.next() else { continue };
                    self.values.push(value);
                    self.sql.push_str(&format!("?{}", self.values.len()));
                }
                None => self.sql.push_str(part),
            }
        }
    }
}

impl Connection {
    /// Writes the revision the record `key` is at now (its fields as they are, after triage
    /// routing) to its history, with what caused it.
    pub fn record_failure_revision(
        &mut self,
        key: SpanRef,
        time_s: i64,
        cause: RevisionCause<'_>,
    ) -> Result<()> {
        let (feedback_id, note_id) = match cause {
            RevisionCause::Feedback(feedback_id) => (Some(feedback_id), None),
            RevisionCause::TriageNote => (
                None,
                self.db.query_value::<i64>(
                    "SELECT id FROM triage_notes WHERE trace_id = ?1 AND span_id = ?2
                     ORDER BY id DESC LIMIT 1",
                    values![&key.trace_id, &key.span_id],
                )?,
            ),
        };
        self.db.execute(
            "INSERT INTO failure_revisions (trace_id, span_id, revision, time_s, category, stage,
                severity, triage_status, owner, feedback_id, note_id)
             SELECT trace_id, span_id, revision, ?3, category, stage, severity, triage_status,
                owner, ?4, ?5
             FROM failures WHERE trace_id = ?1 AND span_id = ?2
             ON CONFLICT DO NOTHING",
            values![&key.trace_id, &key.span_id, time_s, feedback_id, note_id],
        )?;
        Ok(())
    }

    /// Every kept revision of the record `key`, oldest first (records revised before their
    /// history was kept have none before then).
    pub fn failure_revisions(&mut self, key: SpanRef) -> Result<Vec<FailureRevision>> {
        self.db.query(
            "SELECT v.revision, v.time_s, v.category, v.stage, v.severity, v.triage_status,
                v.owner, v.feedback_id, n.note, n.actor, v.note_id
             FROM failure_revisions v LEFT JOIN triage_notes n ON n.id = v.note_id
             WHERE v.trace_id = ?1 AND v.span_id = ?2 ORDER BY v.revision",
            values![&key.trace_id, &key.span_id],
            |row| {
                Ok(FailureRevision {
                    revision: row.get(0)?,
                    time_s: row.get(1)?,
                    category: parse(row, 2, "a failure category")?,
                    stage: parse(row, 3, "a failure stage")?,
                    severity: parse(row, 4, "a failure severity")?,
                    status: parse(row, 5, "a triage status")?,
                    owner: row.get(6)?,
                    feedback_id: row.get(7)?,
                    note: row.get(8)?,
                    actor: row.get(9)?,
                    by_triage: row.get::<Option<i64>>(10)?.is_some(),
                })
            },
        )
    }

    /// One page of the record list: at most `limit` records matching `filter`, newest first
    /// (by creation time, then key, descending; [`FailureFilter::after`] continues from the
    /// last record of a page). One statement: the record's columns and the interned strings
    /// of its response, each filter a condition an index of `failures` serves or a compare
    /// with an interned string's id.
    pub fn failure_list(
        &mut self,
        filter: &FailureFilter,
        limit: usize,
    ) -> Result<Vec<FailureListRow>> {
        let interned = [
            ("r.template_id", &filter.template_id),
            ("r.template_version", &filter.template_version),
            ("r.model", &filter.model),
            ("r.data_source", &filter.data_source),
        ];
        let by_response = interned.iter().any(|(_, value)| value.is_some());
        // Filtered by its response, a record must have one: an inner join, written as a
        // CROSS JOIN so that SQLite reads the records in list order and looks up each one's
        // response, rather than scanning every response for the value.
        let mut query = if by_response {
            Conditions {
                sql: format!("{LIST_SELECT} CROSS JOIN responses r{LIST_STRINGS}"),
                values: Vec::new(),
                any: false,
            }
        } else {
            Conditions {
                sql: list_columns(),
                values: Vec::new(),
                any: false,
            }
        };
        if by_response {
            query.and("r.trace_id = f.trace_id AND r.span_id = f.span_id", []);
        }
        let enums = [
            (
                "f.category = ?",
                filter.category.map(|value| value.as_str()),
            ),
            ("f.stage = ?", filter.stage.map(|value| value.as_str())),
            (
                "f.severity = ?",
                filter.severity.map(|value| value.as_str()),
            ),
            (
                "f.triage_status = ?",
                filter.status.map(|value| value.as_str()),
            ),
            ("f.owner = ?", filter.owner.as_deref()),
        ];
        for (condition, value) in enums {
            if let Some(value) = value {
                query.and(condition, [Value::Text(value)]);
            }
        }
        for (column, value) in interned {
            if let Some(value) = value {
                // The first test reads no row of the join, so it is made once: a value no
                // response has ends the query before it reads any record.
                query.and(
                    &format!(
                        "(SELECT id FROM strings WHERE value = ?) IS NOT NULL
                         AND {column} = (SELECT id FROM strings WHERE value = ?)"
                    ),
                    [Value::Text(value), Value::Text(value)],
                );
            }
        }
        if let Some(since) = filter.created_since_s {
            query.and("f.created_s >= ?", [Value::Int(since)]);
        }
        if let Some(until) = filter.created_until_s {
            query.and("f.created_s < ?", [Value::Int(until)]);
        }
        if let Some(range) = &filter.trace_ids {
            query.and(
                "f.trace_id >= ? AND f.trace_id <= ?",
                [Value::Blob(&range.low), Value::Blob(&range.high)],
            );
        }
        if let Some(after) = &filter.after {
            query.and(
                "(f.created_s < ? OR (f.created_s = ? AND (f.trace_id < ? OR (f.trace_id = ? AND f.span_id < ?))))",
                [
                    Value::Int(after.created_s),
                    Value::Int(after.created_s),
                    Value::Blob(&after.key.trace_id),
                    Value::Blob(&after.key.trace_id),
                    Value::Blob(&after.key.span_id),
                ],
            );
        }
        query
            .values
            .push(Value::Int(limit.min(i64::MAX as usize) as i64));
        query.sql.push_str(&format!(
            " ORDER BY f.created_s DESC, f.trace_id DESC, f.span_id DESC LIMIT ?{}",
            query.values.len()
        ));
        self.db.query(&query.sql, &query.values, list_row)
    }

    /// The record `key` with its response (and the response's content, when kept).
    pub fn failure_detail(&mut self, key: SpanRef) -> Result<Option<FailureDetail>> {
        let record = self.db.query_opt(
            &format!(
                "{} WHERE f.trace_id = ?1 AND f.span_id = ?2",
                list_columns()
            ),
            values![&key.trace_id, &key.span_id],
            list_row,
        )?;
        let Some(record) = record else {
            return Ok(None);
        };
        let mut response = self.response_by_span(key)?;
        if let Some(response) = &mut response {
            let content = self.db.query_opt(
                "SELECT c.input, c.output, c.query FROM response_content c
                 JOIN responses r ON r.id = c.response
                 WHERE r.trace_id = ?1 AND r.span_id = ?2",
                values![&key.trace_id, &key.span_id],
                |row| {
                    Ok(Content {
                        input: row.get(0)?,
                        output: row.get(1)?,
                        query: row.get(2)?,
                    })
                },
            )?;
            response.content = content.unwrap_or_default();
        }
        Ok(Some(FailureDetail { record, response }))
    }

    /// The feedback joined to the record `key`, in the order it was given. A signal, kind or
    /// source this closedloop does not know (written by a newer one) is skipped.
    pub fn record_feedback(&mut self, key: SpanRef) -> Result<Vec<RecordFeedback>> {
        let rows = self.db.query(
            "SELECT feedback_id, time_ns, signal, kind, source, value, category, comment
             FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2
             ORDER BY time_ns, id",
            values![&key.trace_id, &key.span_id],
            |row| {
                let (Ok(signal), Ok(kind), Ok(source)) = (
                    parse(row, 2, "a feedback signal"),
                    parse(row, 3, "a feedback kind"),
                    parse(row, 4, "a feedback source"),
                ) else {
                    return Ok(None);
                };
                Ok(Some(RecordFeedback {
                    feedback_id: row.get(0)?,
                    time_ns: row.get(1)?,
                    signal,
                    kind,
                    source,
                    value: row.get(5)?,
                    category: row
                        .get::<Option<String>>(6)?
                        .and_then(|category| category.parse().ok()),
                    comment: row.get(7)?,
                }))
            },
        )?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// The owners, template ids and versions, models and data sources of the newest `sample`
    /// records, each sorted and distinct: what the record list's filters offer, read in one
    /// bounded statement rather than over every record.
    pub fn failure_facets(&mut self, sample: usize) -> Result<FailureFacets> {
        let rows = self.db.query(
            "SELECT f.owner, ti.value, tv.value, m.value, ds.value
             FROM (SELECT trace_id, span_id, owner FROM failures
                   ORDER BY created_s DESC LIMIT ?1) f
             LEFT JOIN responses r ON r.trace_id = f.trace_id AND r.span_id = f.span_id
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             LEFT JOIN strings m ON m.id = r.model
             LEFT JOIN strings ds ON ds.id = r.data_source",
            values![sample.min(i64::MAX as usize) as i64],
            |row| {
                Ok([
                    row.get::<Option<String>>(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ])
            },
        )?;
        let mut sets: [BTreeSet<String>; 5] = Default::default();
        for values in rows {
            for (set, value) in sets.iter_mut().zip(values) {
                if let Some(value) = value.filter(|value| !value.is_empty()) {
                    set.insert(value);
                }
            }
        }
        let [owners, template_ids, template_versions, models, data_sources] =
            sets.map(|set| set.into_iter().collect());
        Ok(FailureFacets {
            owners,
            template_ids,
            template_versions,
            models,
            data_sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Feedback, FeedbackState};
    use crate::testing::{both_engines, insert_failure, insert_response, key, Failure};

    fn record(
        conn: &mut Connection,
        n: u8,
        created_s: i64,
        change: impl FnOnce(&mut Failure, &mut crate::testing::Response),
    ) {
        let mut failure = Failure::new(key(n), created_s);
        let mut response = crate::testing::Response {
            received_s: created_s,
            template_id: Some("answer"),
            template_version: Some("v1"),
            model: Some("gpt-4o-mini"),
            data_source: Some("help-center"),
            ..Default::default()
        };
        change(&mut failure, &mut response);
        insert_failure(conn, &failure);
        insert_response(conn, key(n), &response);
    }

    fn keys(rows: &[FailureListRow]) -> Vec<u8> {
        rows.iter().map(|row| row.key.span_id[0]).collect()
    }

    fn list(conn: &mut Connection, filter: FailureFilter) -> Vec<u8> {
        keys(&conn.failure_list(&filter, 100).unwrap())
    }

    pub(crate) fn each_filter_narrows_the_list(conn: &mut Connection) {
        record(conn, 1, 100, |_, _| {});
        record(conn, 2, 200, |failure, response| {
            failure.category = "missing_context";
            failure.stage = "retrieval";
            response.model = Some("gpt-4o");
        });
        record(conn, 3, 300, |failure, response| {
            failure.severity = "high";
            failure.owner = Some("search-team");
            response.template_version = Some("v2");
            response.data_source = Some("product-docs");
        });
        record(conn, 4, 400, |failure, response| {
            failure.triage_status = "acknowledged";
            response.template_id = Some("summarize");
        });
        // A record whose response was never indexed.
        insert_failure(conn, &Failure::new(key(5), 500));
        assert_eq!(list(conn, FailureFilter::default()), [5, 4, 3, 2, 1]);
        let cases: [(FailureFilter, &[u8]); 11] = [
            (
                FailureFilter {
                    category: Some(FailureCategory::MissingContext),
                    ..Default::default()
                },
                &[2],
            ),
            (
                FailureFilter {
                    stage: Some(FailureStage::Retrieval),
                    ..Default::default()
                },
                &[2],
            ),
            (
                FailureFilter {
                    severity: Some(FailureSeverity::High),
                    ..Default::default()
                },
                &[3],
            ),
            (
                FailureFilter {
                    status: Some(TriageStatus::Acknowledged),
                    ..Default::default()
                },
                &[4],
            ),
            (
                FailureFilter {
                    owner: Some("search-team".into()),
                    ..Default::default()
                },
                &[3],
            ),
            (
                FailureFilter {
                    template_id: Some("summarize".into()),
                    ..Default::default()
                },
                &[4],
            ),
            (
                FailureFilter {
                    template_id: Some("answer".into()),
                    template_version: Some("v1".into()),
                    ..Default::default()
                },
                &[2, 1],
            ),
            (
                FailureFilter {
                    model: Some("gpt-4o".into()),
                    ..Default::default()
                },
                &[2],
            ),
            (
                FailureFilter {
                    data_source: Some("product-docs".into()),
                    ..Default::default()
                },
                &[3],
            ),
            (
                FailureFilter {
                    created_since_s: Some(200),
                    created_until_s: Some(400),
                    ..Default::default()
                },
                &[3, 2],
            ),
            (
                FailureFilter {
                    // A value no response has: nothing, not everything.
                    model: Some("no-such-model".into()),
                    ..Default::default()
                },
                &[],
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(list(conn, filter.clone()), expected, "{filter:?}");
        }
        let rows = conn.failure_list(&FailureFilter::default(), 100).unwrap();
        assert_eq!(rows[1].template_id.as_deref(), Some("summarize"));
        assert_eq!(rows[2].owner.as_deref(), Some("search-team"));
        assert_eq!(rows[3].model.as_deref(), Some("gpt-4o"));
        assert_eq!(rows[0].model, None);
    }

    pub(crate) fn trace_ids_are_searched_by_prefix(conn: &mut Connection) {
        for n in [0x12, 0x13, 0x21] {
            insert_failure(conn, &Failure::new(key(n), 100));
        }
        let search = |conn: &mut Connection, hex: &str| {
            list(
                conn,
                FailureFilter {
                    trace_ids: TraceIdRange::from_hex_prefix(hex),
                    ..Default::default()
                },
            )
        };
        assert_eq!(search(conn, "12121212"), [0x12]);
        assert_eq!(search(conn, "1313131313131313131313131313131"), [0x13]);
        assert_eq!(search(conn, &"21".repeat(16)), [0x21]);
        assert_eq!(search(conn, &"21".repeat(16).to_uppercase()), [0x21]);
        assert_eq!(search(conn, "1212121213"), Vec::<u8>::new());
        assert_eq!(TraceIdRange::from_hex_prefix("1212121"), None);
        assert_eq!(TraceIdRange::from_hex_prefix("zz121212"), None);
        assert_eq!(TraceIdRange::from_hex_prefix(&"1".repeat(33)), None);
    }

    pub(crate) fn pages_follow_each_other_newest_first(conn: &mut Connection) {
        // Two records created in the same second are ordered by key.
        for (n, created_s) in [(1, 100), (2, 200), (3, 200), (4, 300), (5, 400)] {
            insert_failure(conn, &Failure::new(key(n), created_s));
        }
        let mut seen = Vec::new();
        let mut filter = FailureFilter::default();
        loop {
            let page = conn.failure_list(&filter, 2).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            seen.extend(keys(&page));
            let last = page.last().unwrap();
            filter.after = Some(FailureCursor {
                created_s: last.created_s,
                key: last.key,
            });
        }
        assert_eq!(seen, [5, 4, 3, 2, 1]);
    }

    pub(crate) fn revisions_keep_their_state_and_cause(conn: &mut Connection) {
        let record_key = key(1);
        let mut failure = Failure::new(record_key, 100);
        failure.owner = Some("search-team");
        insert_failure(conn, &failure);
        conn.record_failure_revision(record_key, 100, RevisionCause::Feedback("fb-1"))
            .unwrap();
        // A second write of the same revision keeps the first.
        conn.record_failure_revision(record_key, 101, RevisionCause::Feedback("fb-x"))
            .unwrap();
        conn.set_triage_status(
            record_key,
            TriageStatus::Acknowledged,
            150,
            Some("looking into it"),
            Some("ana"),
        )
        .unwrap();
        conn.db
            .execute(
                "UPDATE failures SET revision = 2 WHERE trace_id = ?1",
                values![&record_key.trace_id],
            )
            .unwrap();
        conn.record_failure_revision(record_key, 150, RevisionCause::TriageNote)
            .unwrap();
        let revisions = conn.failure_revisions(record_key).unwrap();
        assert_eq!(revisions.len(), 2, "{revisions:?}");
        assert_eq!(revisions[0].revision, 1);
        assert_eq!(revisions[0].time_s, 100);
        assert_eq!(revisions[0].status, TriageStatus::Open);
        assert_eq!(revisions[0].owner.as_deref(), Some("search-team"));
        assert_eq!(revisions[0].feedback_id.as_deref(), Some("fb-1"));
        assert!(!revisions[0].by_triage);
        assert_eq!(revisions[0].note, None);
        assert_eq!(revisions[1].revision, 2);
        assert_eq!(revisions[1].status, TriageStatus::Acknowledged);
        assert!(revisions[1].by_triage);
        assert_eq!(revisions[1].note.as_deref(), Some("looking into it"));
        assert_eq!(revisions[1].actor.as_deref(), Some("ana"));
        assert_eq!(revisions[1].feedback_id, None);
        assert!(conn.failure_revisions(key(2)).unwrap().is_empty());
    }

    pub(crate) fn a_record_page_has_its_response_content_and_feedback(conn: &mut Connection) {
        record(conn, 1, 100, |_, response| {
            response.query = Some("<script>alert(1)</script> how do I reset my password?");
            response.output = Some("Open Settings, then Security.");
            response.chunk_ids = Some(vec!["kb-7".into(), "kb-2".into()]);
        });
        for (id, time_ns, signal) in [
            ("fb-late", 2_000, FeedbackSignal::Rephrase),
            ("fb-early", 1_000, FeedbackSignal::ThumbsDown),
        ] {
            let row = conn
                .insert_feedback(
                    &Feedback {
                        feedback_id: id.into(),
                        span: None,
                        target: Some(key(1)),
                        response_id: None,
                        signal,
                        kind: FeedbackKind::Explicit,
                        value: Some(0.0),
                        category: Some(FailureCategory::MissingContext),
                        source: FeedbackSource::User,
                        comment: Some("wrong page".into()),
                        session_id: None,
                        user_id: None,
                        time_unix_nano: time_ns,
                    },
                    100,
                    FeedbackState::Joined,
                )
                .unwrap()
                .unwrap();
            conn.set_feedback_target(row, key(1), FeedbackState::Joined)
                .unwrap();
        }
        let detail = conn.failure_detail(key(1)).unwrap().unwrap();
        assert_eq!(detail.record.template_version.as_deref(), Some("v1"));
        let response = detail.response.unwrap();
        assert_eq!(
            response.content.query.as_deref(),
            Some("<script>alert(1)</script> how do I reset my password?")
        );
        assert_eq!(
            response.content.output.as_deref(),
            Some("Open Settings, then Security.")
        );
        assert_eq!(
            response.chunk_ids,
            Some(vec!["kb-7".to_owned(), "kb-2".to_owned()])
        );
        let feedback = conn.record_feedback(key(1)).unwrap();
        let ids: Vec<&str> = feedback
            .iter()
            .map(|item| item.feedback_id.as_str())
            .collect();
        assert_eq!(ids, ["fb-early", "fb-late"]);
        assert_eq!(feedback[0].signal, FeedbackSignal::ThumbsDown);
        assert_eq!(feedback[0].comment.as_deref(), Some("wrong page"));
        assert_eq!(feedback[0].category, Some(FailureCategory::MissingContext));
        assert_eq!(conn.failure_detail(key(2)).unwrap(), None);
        // A record without an indexed response: no response, no content.
        insert_failure(conn, &Failure::new(key(3), 100));
        assert_eq!(conn.failure_detail(key(3)).unwrap().unwrap().response, None);
    }

    pub(crate) fn facets_come_from_the_newest_records(conn: &mut Connection) {
        record(conn, 1, 100, |failure, response| {
            failure.owner = Some("old-team");
            response.model = Some("old-model");
        });
        record(conn, 2, 200, |failure, _| {
            failure.owner = Some("search-team")
        });
        record(conn, 3, 300, |failure, response| {
            failure.owner = Some("answers-team");
            response.template_version = Some("v2");
        });
        let facets = conn.failure_facets(2).unwrap();
        assert_eq!(facets.owners, ["answers-team", "search-team"]);
        assert_eq!(facets.template_ids, ["answer"]);
        assert_eq!(facets.template_versions, ["v1", "v2"]);
        assert_eq!(facets.models, ["gpt-4o-mini"]);
        assert_eq!(facets.data_sources, ["help-center"]);
        assert!(conn
            .failure_facets(10)
            .unwrap()
            .models
            .contains(&"old-model".to_owned()));
    }

    both_engines!(
        each_filter_narrows_the_list,
        trace_ids_are_searched_by_prefix,
        pages_follow_each_other_newest_first,
        revisions_keep_their_state_and_cause,
        a_record_page_has_its_response_content_and_feedback,
        facets_come_from_the_newest_records,
    );
}
