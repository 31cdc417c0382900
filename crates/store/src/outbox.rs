//! The export outbox: encoded failure-record spans waiting for delivery, one row per
//! revision and sink.
//!
//! The sinks a revision is queued for are store state (`outbox_sinks`), set by the receiver
//! at start ([`Connection::set_outbox_sinks`]), so a command that writes a revision on its own
//! connection queues it for the same sinks. A store that never had its sinks set queues for
//! `otlp` alone.

use crate::connection::Connection;
use crate::db::values;
use crate::error::Result;
use crate::records::OutboxRow;
use crate::Engine;

impl Connection {
    /// Queues an encoded failure-record span, once for each sink of [`Connection::outbox_sinks`].
    /// Returns how many rows were queued.
    pub fn insert_outbox(&mut self, now_s: i64, span: &[u8]) -> Result<usize> {
        let rows = self.db.execute(
            "INSERT INTO outbox (created_s, span, sink) SELECT ?1, ?2, name FROM outbox_sinks",
            values![now_s, span],
        )?;
        Ok(rows as usize)
    }

    /// Makes `sinks` the sinks later revisions are queued for. Rows already waiting for a sink
    /// no longer in the set stay: its exporter, where one still runs, delivers them, and the
    /// outbox's pruning removes them otherwise. Returns the sinks taken out of the set, so
    /// that the caller can say so (on a shared store, receivers configured differently change
    /// the set at each start).
    pub fn set_outbox_sinks(&mut self, sinks: &[&str]) -> Result<Vec<String>> {
        let mut tx = self.transaction()?;
        let current = tx.outbox_sinks()?;
        let mut removed = Vec::new();
        for name in current
            .iter()
            .filter(|name| !sinks.contains(&name.as_str()))
        {
            tx.db.execute(
                "DELETE FROM outbox_sinks WHERE name = ?1",
                values![name.as_str()],
            )?;
            removed.push(name.clone());
        }
        for &name in sinks {
            // Two receivers starting at once may add the same sink.
            tx.db.execute(
                "INSERT INTO outbox_sinks (name) VALUES (?1) ON CONFLICT DO NOTHING",
                values![name],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The sinks revisions are queued for, by name.
    pub fn outbox_sinks(&mut self) -> Result<Vec<String>> {
        self.db.query(
            "SELECT name FROM outbox_sinks ORDER BY name",
            values![],
            |row| row.get(0),
        )
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

    /// The oldest outbox rows after `after_id` (of every sink), at most `limit`.
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

    /// Claims the oldest rows to deliver to `sink`, at most `limit`. On PostgreSQL, several receivers
    /// share the outbox: the rows are leased until `leased_until_s` and skipped by every
    /// other claim until then (rows another receiver is claiming at the same moment are
    /// skipped too, `FOR UPDATE SKIP LOCKED`), so each row is sent by one receiver at a time
    /// and the rows of a receiver that died go to another when their lease expires. On
    /// SQLite one receiver owns the outbox: the oldest rows, with no lease (and no write, so
    /// a read-only connection can claim).
    pub fn claim_outbox(
        &mut self,
        sink: &str,
        now_s: i64,
        leased_until_s: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let read = |row: &crate::db::Row<'_>| {
            Ok(OutboxRow {
                id: row.get(0)?,
                span: row.get(1)?,
            })
        };
        let mut rows = match self.engine() {
            Engine::Sqlite => self.db.query(
                "SELECT id, span FROM outbox WHERE sink = ?2 ORDER BY id LIMIT ?1",
                values![limit, sink],
                read,
            )?,
            Engine::Postgres => self.db.query(
                "UPDATE outbox SET leased_until_s = ?2
                 WHERE id IN (SELECT id FROM outbox WHERE sink = ?4 AND leased_until_s <= ?1
                              ORDER BY id LIMIT ?3 FOR UPDATE SKIP LOCKED)
                 RETURNING id, span",
                values![now_s, leased_until_s, limit, sink],
                read,
            )?,
        };
        rows.sort_unstable_by_key(|row| row.id);
        Ok(rows)
    }

    /// Gives up the lease of claimed rows that were not delivered, so the next claim (of any
    /// receiver) takes them again at once. A no-op on SQLite.
    pub fn release_outbox(&mut self, ids: &[i64]) -> Result<()> {
        if self.engine() == Engine::Sqlite {
            return Ok(());
        }
        for &id in ids {
            self.db.execute(
                "UPDATE outbox SET leased_until_s = 0 WHERE id = ?1",
                values![id],
            )?;
        }
        Ok(())
    }
}
