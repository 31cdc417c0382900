//! The webhook notification queue: rows wait until delivered, and a receiver that reads
//! rows to send holds them under a lease, so several receivers on one store never send the
//! same row at once and a receiver that dies lets its rows go when the lease expires.

use crate::db::values;
use crate::error::Result;
use crate::{Connection, Engine};

/// A queued notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The queue id.
    pub id: i64,
    /// What it announces (`new_failure`, `sla_breach`).
    pub kind: String,
    /// The webhook body.
    pub payload: String,
}

impl Connection {
    /// Queues a notification.
    pub fn queue_notification(&mut self, now_s: i64, kind: &str, payload: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO notifications (created_s, kind, payload, leased_until_s)
             VALUES (?1, ?2, ?3, 0)",
            values![now_s, kind, payload],
        )?;
        Ok(())
    }

    /// Claims up to `limit` queued notifications whose lease expired by `now_s` (oldest
    /// first), leasing them until `leased_until_s`. On PostgreSQL rows another receiver is
    /// claiming at the same moment are skipped (`FOR UPDATE SKIP LOCKED`), so each row is
    /// claimed by one receiver.
    pub fn claim_notifications(
        &mut self,
        now_s: i64,
        leased_until_s: i64,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "UPDATE notifications SET leased_until_s = ?2
                 WHERE id IN (SELECT id FROM notifications WHERE leased_until_s <= ?1
                              ORDER BY id LIMIT ?3)
                 RETURNING id, kind, payload"
            }
            Engine::Postgres => {
                "UPDATE notifications SET leased_until_s = ?2
                 WHERE id IN (SELECT id FROM notifications WHERE leased_until_s <= ?1
                              ORDER BY id LIMIT ?3 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, payload"
            }
        };
        let mut claimed = self.db.query(
            sql,
            values![now_s, leased_until_s, limit.min(i64::MAX as usize) as i64],
            |row| {
                Ok(Notification {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    payload: row.get(2)?,
                })
            },
        )?;
        // RETURNING gives no order.
        claimed.sort_by_key(|notification| notification.id);
        Ok(claimed)
    }

    /// Gives up the lease of a claimed notification that was not delivered, so the next
    /// claim (by any receiver) takes it again.
    pub fn release_notification(&mut self, id: i64) -> Result<()> {
        self.db.execute(
            "UPDATE notifications SET leased_until_s = 0 WHERE id = ?1",
            values![id],
        )?;
        Ok(())
    }

    /// Deletes a delivered (or refused) notification.
    pub fn delete_notification(&mut self, id: i64) -> Result<()> {
        self.db
            .execute("DELETE FROM notifications WHERE id = ?1", values![id])?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::both_engines;

    fn ids(notifications: &[Notification]) -> Vec<i64> {
        notifications.iter().map(|n| n.id).collect()
    }

    pub(crate) fn claims_lease_rows(conn: &mut Connection) {
        for n in 0..5 {
            conn.queue_notification(100, "new_failure", &format!("{{\"n\":{n}}}"))
                .unwrap();
        }
        let first = conn.claim_notifications(100, 160, 3).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[0].kind, "new_failure");
        assert_eq!(first[0].payload, "{\"n\":0}");
        assert!(first.windows(2).all(|pair| pair[0].id < pair[1].id));
        // Leased rows are not claimed again before their lease ends.
        let second = conn.claim_notifications(110, 170, 10).unwrap();
        assert_eq!(second.len(), 2);
        assert!(ids(&second).iter().all(|id| !ids(&first).contains(id)));
        assert!(conn.claim_notifications(120, 180, 10).unwrap().is_empty());
        // Delivered: gone. Failed: released, claimed again at once.
        conn.delete_notification(first[0].id).unwrap();
        conn.release_notification(first[1].id).unwrap();
        assert_eq!(
            ids(&conn.claim_notifications(120, 180, 10).unwrap()),
            vec![first[1].id]
        );
        // An expired lease (a receiver that died) frees the rest.
        let expired = conn.claim_notifications(175, 240, 10).unwrap();
        assert_eq!(ids(&expired), vec![first[2].id, second[0].id, second[1].id]);
    }

    /// Two receivers: rows one is claiming are skipped by the other, never sent twice.
    pub(crate) fn receivers_claim_distinct_rows(first: &mut Connection, second: &mut Connection) {
        for n in 0..3 {
            first
                .queue_notification(100, "sla_breach", &n.to_string())
                .unwrap();
        }
        let mut tx = first.transaction().unwrap();
        let mine = tx.claim_notifications(100, 160, 2).unwrap();
        assert_eq!(mine.len(), 2);
        // The first receiver's claim is not committed yet: its rows are locked and skipped.
        let theirs = second.claim_notifications(100, 160, 10).unwrap();
        assert_eq!(theirs.len(), 1);
        assert!(!ids(&mine).contains(&theirs[0].id));
        tx.commit().unwrap();
        assert!(second.claim_notifications(100, 160, 10).unwrap().is_empty());
        assert!(first.claim_notifications(100, 160, 10).unwrap().is_empty());
    }

    #[test]
    fn receivers_claim_distinct_rows_on_postgres() {
        crate::testing::on_postgres_pair(
            concat!(
                module_path!(),
                "::receivers_claim_distinct_rows_on_postgres"
            ),
            receivers_claim_distinct_rows,
        );
    }

    both_engines!(claims_lease_rows,);
}
