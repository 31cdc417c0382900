//! Failure records: one per failing response, keyed by the judged span.

use crate::connection::Connection;
use crate::db::values;
use crate::error::Result;
use crate::records::{FailureRow, FailureState, SpanRef};

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
