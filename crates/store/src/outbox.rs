//! The export outbox: encoded failure-record spans waiting for delivery.

use crate::connection::Connection;
use crate::db::values;
use crate::error::Result;
use crate::records::OutboxRow;

impl Connection {
    /// Queues an encoded failure-record span.
    pub fn insert_outbox(&mut self, now_s: i64, span: &[u8]) -> Result<()> {
        self.db.execute(
            "INSERT INTO outbox (created_s, span) VALUES (?1, ?2)",
            values![now_s, span],
        )?;
        Ok(())
    }

    /// Deletes delivered rows; returns how many existed.
    pub fn delete_outbox(&mut self, ids: &[i64]) -> Result<usize> {
        let mut deleted = 0;
        for &id in ids {
            deleted += self
                .db
                .execute("DELETE FROM outbox WHERE id = ?1", values![id])?
                as usize;
        }
        Ok(deleted)
    }

    /// How many rows wait for delivery.
    pub fn outbox_len(&mut self) -> Result<usize> {
        Ok(self
            .db
            .query_value::<i64>("SELECT count(*) FROM outbox", values![])?
            .unwrap_or(0) as usize)
    }

    /// The oldest outbox rows after `after_id`, at most `limit`.
    pub fn read_outbox(&mut self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        self.db.query(
            "SELECT id, span FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            values![after_id, limit as i64],
            |row| {
                Ok(OutboxRow {
                    id: row.get(0)?,
                    span: row.get(1)?,
                })
            },
        )
    }
}
