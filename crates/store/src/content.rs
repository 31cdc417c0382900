//! Captured content (prompts, answers, queries) kept only where people need it: the
//! responses with a failure record or in a review sample (`store.content_retention`).

use crate::connection::Connection;
use crate::db::values;
use crate::error::Result;

impl Connection {
    /// Deletes the captured content of the responses received in `from_s..to_s` that have no
    /// failure record and are in no review sample (of any day). Returns the content rows
    /// deleted. One statement over `response_content` (which then holds little more than the
    /// days not yet sampled), each row checked through the primary keys and unique indexes
    /// of `responses`, `failures` and `review_queue`.
    pub fn drop_unneeded_content(&mut self, from_s: i64, to_s: i64) -> Result<usize> {
        Ok(self.db.execute(
            "DELETE FROM response_content WHERE EXISTS (
                SELECT 1 FROM responses r
                WHERE r.id = response_content.response
                  AND r.received_s >= ?1 AND r.received_s < ?2
                  AND NOT EXISTS (SELECT 1 FROM failures f
                      WHERE f.trace_id = r.trace_id AND f.span_id = r.span_id)
                  AND NOT EXISTS (SELECT 1 FROM review_queue q
                      WHERE q.trace_id = r.trace_id AND q.span_id = r.span_id))",
            values![from_s, to_s],
        )? as usize)
    }

    /// Whether the unneeded content of `day` (`YYYY-MM-DD`) was deleted for good (see
    /// [`Connection::mark_content_dropped`]).
    pub fn content_dropped(&mut self, day: &str) -> Result<bool> {
        self.db
            .exists("SELECT 1 FROM content_drops WHERE day = ?1", values![day])
    }

    /// Records that the unneeded content of `day` (`YYYY-MM-DD`), which has ended, was
    /// deleted at `now_s` (`deleted` rows), so it is not looked at again. A day already
    /// recorded keeps its first record.
    pub fn mark_content_dropped(&mut self, day: &str, now_s: i64, deleted: usize) -> Result<()> {
        self.db.execute(
            "INSERT INTO content_drops (day, dropped_s, deleted) VALUES (?1, ?2, ?3)
             ON CONFLICT (day) DO NOTHING",
            values![day, now_s, deleted.min(i64::MAX as usize) as i64],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::connection::Connection;
    use crate::records::ReviewStratum;
    use crate::testing::{both_engines, insert_failure, insert_response, key, Failure, Response};

    fn content(conn: &mut Connection, received_s: i64, n: u8) {
        insert_response(
            conn,
            key(n),
            &Response {
                received_s,
                query: Some("q"),
                output: Some("a"),
                ..Response::default()
            },
        );
    }

    fn kept(conn: &mut Connection) -> Vec<u8> {
        conn.db
            .query(
                "SELECT r.trace_id FROM response_content c JOIN responses r ON r.id = c.response
                 ORDER BY r.id",
                crate::db::values![],
                |row| Ok(row.get::<Vec<u8>>(0)?[0]),
            )
            .unwrap()
    }

    /// Of a day's responses, those with a failure record (whatever its revision) and those in
    /// a review sample keep their content; the others' goes, and other days are untouched.
    pub(crate) fn only_needed_content_is_dropped(conn: &mut Connection) {
        for n in 1..=5 {
            content(conn, 100 + i64::from(n), n);
        }
        content(conn, 86_400, 6);
        insert_failure(conn, &Failure::new(key(2), 200));
        insert_failure(
            conn,
            &Failure {
                revision: 4,
                ..Failure::new(key(3), 200)
            },
        );
        // Queued from another day's sample: still needed.
        conn.queue_review_item("2026-01-01", key(4), ReviewStratum::Uniform, 300)
            .unwrap();
        assert_eq!(conn.drop_unneeded_content(0, 86_400).unwrap(), 2);
        assert_eq!(kept(conn), vec![2, 3, 4, 6]);
        assert_eq!(conn.drop_unneeded_content(0, 86_400).unwrap(), 0);

        assert!(!conn.content_dropped("1970-01-01").unwrap());
        conn.mark_content_dropped("1970-01-01", 90_000, 2).unwrap();
        conn.mark_content_dropped("1970-01-01", 95_000, 0).unwrap();
        assert!(conn.content_dropped("1970-01-01").unwrap());
        assert!(!conn.content_dropped("1970-01-02").unwrap());
    }

    both_engines!(only_needed_content_is_dropped);
}
