//! One way to run a statement on either engine.
//!
//! Statements are written once, in the SQL both engines accept, with numbered placeholders
//! (`?1`, `?2`, ...): SQLite reads them as they are, and the PostgreSQL side rewrites them to
//! `$1`, `$2`, ... once per statement, when it prepares it. Where the dialects differ (DDL,
//! a few functions), the caller picks the text with [`Db::engine`]. Values cross the
//! boundary as [`Value`] (in) and [`Column`] (out), so no engine type leaves this module and
//! the engine modules.
//!
//! Both engines cache prepared statements per connection, keyed by the statement's text.
//!
//! What PostgreSQL holds a statement to that SQLite does not:
//! - Every placeholder needs a type it can infer: `WHERE id = ?1` and `VALUES (?1)` give one,
//!   a bare `SELECT ?1` or `?1 + ?2` does not (write `CAST(?1 AS BIGINT)`). A value of the
//!   wrong kind for its placeholder's type is an error, not a conversion.
//! - `SUM` and `AVG` of integers are NUMERIC, and integer literals INTEGER: cast aggregates
//!   to BIGINT; an INTEGER column reads as an integer.
//! - Text cannot hold NUL: such characters are stored as U+FFFD (the same text finds the
//!   row again).
//! - An error inside a transaction aborts it: every later statement fails, and its commit
//!   reports that first error. So a statement expected to fail is no way to test for a row
//!   (use `ON CONFLICT`, `EXISTS`).
//! - `ON CONFLICT (columns)` names a unique index by its exact columns or expressions (or
//!   omit the target with `DO NOTHING`).

use std::collections::HashMap;

use crate::error::{Result, StoreError};
use crate::Engine;

/// A value bound to a placeholder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// A list of blobs, bound as one PostgreSQL `BYTEA[]` (`= ANY(?1)`, `unnest(?1)`); SQLite
    /// binds no lists, so callers of a list statement pick it with [`Db::engine`].
    Blobs(&'a [&'a [u8]]),
    /// A list of texts, bound as one PostgreSQL `TEXT[]`; as [`Value::Blobs`].
    Texts(&'a [&'a str]),
    /// A list of integers, bound as one PostgreSQL `BIGINT[]`; as [`Value::Blobs`].
    Ints(&'a [i64]),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<f64> for Value<'_> {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Value::Blob(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Value::Blob(value)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Value<'a> {
    fn from(value: &'a [u8; N]) -> Self {
        Value::Blob(value)
    }
}

impl<'a, T> From<Option<T>> for Value<'a>
where
    T: Into<Value<'a>>,
{
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// Builds a `&[Value]` from expressions that convert into [`Value`].
macro_rules! values {
    () => { &[] as &[$crate::db::Value<'_>] };
    ($($value:expr),+ $(,)?) => { &[$($crate::db::Value::from($value)),+] as &[$crate::db::Value<'_>] };
}
pub(crate) use values;

/// [`Db::insert_id`] with the `RETURNING id` form of `$sql` written out at compile time.
macro_rules! insert_id {
    ($db:expr, $sql:expr, $params:expr $(,)?) => {
        $db.insert_id($sql, concat!($sql, " RETURNING id"), $params)
    };
}
pub(crate) use insert_id;

/// A column of a result row, borrowed from the row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Column<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl Column<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Column::Null => "NULL",
            Column::Int(_) => "an integer",
            Column::Real(_) => "a real",
            Column::Text(_) => "text",
            Column::Blob(_) => "a blob",
        }
    }
}

/// A Rust value read from a [`Column`].
pub(crate) trait FromColumn: Sized {
    /// What the conversion expects, for errors.
    const EXPECTED: &'static str;
    /// `None` when the column holds something else.
    fn from_column(column: Column<'_>) -> Option<Self>;
}

impl FromColumn for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_column(column: Column<'_>) -> Option<Self> {
        match column {
            Column::Int(value) => Some(value),
            _ => None,
        }
    }
}

impl FromColumn for bool {
    const EXPECTED: &'static str = "an integer";
    fn from_column(column: Column<'_>) -> Option<Self> {
        i64::from_column(column).map(|value| value != 0)
    }
}

impl FromColumn for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_column(column: Column<'_>) -> Option<Self> {
        match column {
            Column::Real(value) => Some(value),
            Column::Int(value) => Some(value as f64),
            _ => None,
        }
    }
}

impl FromColumn for String {
    const EXPECTED: &'static str = "text";
    fn from_column(column: Column<'_>) -> Option<Self> {
        match column {
            Column::Text(value) => Some(value.to_owned()),
            _ => None,
        }
    }
}

impl FromColumn for Vec<u8> {
    const EXPECTED: &'static str = "a blob";
    fn from_column(column: Column<'_>) -> Option<Self> {
        match column {
            Column::Blob(value) => Some(value.to_vec()),
            _ => None,
        }
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_column(column: Column<'_>) -> Option<Self> {
        match column {
            Column::Null => Some(None),
            other => T::from_column(other).map(Some),
        }
    }
}

/// One result row of either engine.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// The column at `index` (from 0), owned.
    pub(crate) fn cell(&self, index: usize) -> Result<crate::inspect::Cell> {
        match self {
            Row::Sqlite(row) => {
                Ok(sqlite_column(row.get_ref(index).map_err(StoreError::sqlite)?).into())
            }
            Row::Postgres(row) => Ok(crate::postgres::column(row, index)?.into()),
        }
    }

    /// The column at `index` (from 0) as `T`.
    pub(crate) fn get<T: FromColumn>(&self, index: usize) -> Result<T> {
        let mismatch = |found: &'static str| StoreError::Type {
            column: index,
            found,
            expected: T::EXPECTED,
        };
        match self {
            Row::Sqlite(row) => {
                let column = sqlite_column(row.get_ref(index).map_err(StoreError::sqlite)?);
                T::from_column(column).ok_or_else(|| mismatch(column.kind()))
            }
            Row::Postgres(row) => {
                let column = crate::postgres::column(row, index)?;
                T::from_column(column).ok_or_else(|| mismatch(column.kind()))
            }
        }
    }
}

fn sqlite_column(value: rusqlite::types::ValueRef<'_>) -> Column<'_> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Column::Null,
        ValueRef::Integer(value) => Column::Int(value),
        ValueRef::Real(value) => Column::Real(value),
        // SQLite text is UTF-8 whenever this crate wrote it; anything else reads as a blob.
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Column::Text(text),
            Err(_) => Column::Blob(bytes),
        },
        ValueRef::Blob(bytes) => Column::Blob(bytes),
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(value),
            Value::Real(value) => ValueRef::Real(value),
            Value::Text(value) => ValueRef::Text(value.as_bytes()),
            Value::Blob(value) => ValueRef::Blob(value),
            Value::Blobs(_) | Value::Texts(_) | Value::Ints(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "SQLite binds no lists: this statement is PostgreSQL's".into(),
                ))
            }
        }))
    }
}

/// A connection to either engine.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    /// Boxed: the client is several times the size of a SQLite connection.
    Postgres(Box<crate::postgres::Client>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Db").field(&self.engine()).finish()
    }
}

impl Db {
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        match self {
            Db::Sqlite(conn) => conn
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(params)))
                .map(|changed| changed as u64)
                .map_err(StoreError::sqlite),
            Db::Postgres(client) => client.execute(sql, params),
        }
    }

    /// Runs an idempotent insert of data that several receivers share and nothing rolls
    /// back (template text), committed at once: on PostgreSQL on a second session, so
    /// receivers' transactions never wait for each other over it; on SQLite, which has one
    /// writer, in the open transaction.
    pub(crate) fn execute_apart(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        match self {
            Db::Sqlite(_) => self.execute(sql, params),
            Db::Postgres(client) => client.execute_apart(sql, params),
        }
    }

    /// Runs a query and maps every row.
    pub(crate) fn query<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql).map_err(StoreError::sqlite)?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(params))
                    .map_err(StoreError::sqlite)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(StoreError::sqlite)? {
                    out.push(map(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Db::Postgres(client) => client
                .query(sql, params)?
                .iter()
                .map(|row| map(&Row::Postgres(row)))
                .collect(),
        }
    }

    /// Runs a query and maps its first row, if any.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql).map_err(StoreError::sqlite)?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(params))
                    .map_err(StoreError::sqlite)?;
                match rows.next().map_err(StoreError::sqlite)? {
                    Some(row) => map(&Row::Sqlite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Db::Postgres(client) => match client.query(sql, params)?.first() {
                Some(row) => map(&Row::Postgres(row)).map(Some),
                None => Ok(None),
            },
        }
    }

    /// The first column of the first row, if any.
    pub(crate) fn query_value<T: FromColumn>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
    ) -> Result<Option<T>> {
        self.query_opt(sql, params, |row| row.get(0))
    }

    /// Runs an `INSERT ... ON CONFLICT DO NOTHING`; the new row's id, or `None` when it
    /// conflicted. `returning` is the same statement followed by `RETURNING id` (write it
    /// with [`insert_id!`]). SQLite runs `sql` and reads the rowid, which is cheaper than
    /// its `RETURNING` (that buffers the returned rows); PostgreSQL runs `returning`.
    pub(crate) fn insert_id(
        &mut self,
        sql: &str,
        returning: &str,
        params: &[Value<'_>],
    ) -> Result<Option<i64>> {
        match self {
            Db::Sqlite(conn) => {
                let changed = conn
                    .prepare_cached(sql)
                    .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(params)))
                    .map_err(StoreError::sqlite)?;
                Ok((changed == 1).then(|| conn.last_insert_rowid()))
            }
            Db::Postgres(_) => self.query_value(returning, params),
        }
    }

    /// Whether the query returns a row.
    pub(crate) fn exists(&mut self, sql: &str, params: &[Value<'_>]) -> Result<bool> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }

    /// Runs statements without parameters (DDL, transaction control).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(conn) => conn.execute_batch(sql).map_err(StoreError::sqlite),
            Db::Postgres(client) => client.batch(sql),
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction never fails half-way for want of it; on PostgreSQL it
    /// runs at READ COMMITTED, and writers that must not interleave take advisory locks
    /// ([`Db::lock_keys`]).
    pub(crate) fn begin(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres(client) => client.begin("BEGIN"),
        }
    }

    /// Starts a transaction that only reads, with one snapshot for all of its statements.
    pub(crate) fn begin_read(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN DEFERRED"),
            Db::Postgres(client) => client.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        }
    }

    pub(crate) fn commit(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(_) => self.batch("COMMIT"),
            Db::Postgres(client) => client.commit(),
        }
    }

    /// Rolls back the open transaction; a no-op when none is open.
    pub(crate) fn rollback(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(conn) if conn.is_autocommit() => Ok(()),
            Db::Sqlite(_) => self.batch("ROLLBACK"),
            Db::Postgres(client) => client.rollback(),
        }
    }

    /// Takes the lock `key` until the end of the open transaction if no other transaction
    /// holds it; `false` when one does. Always `true` on SQLite, which has one writer.
    pub(crate) fn try_lock_key(&mut self, key: i64) -> Result<bool> {
        match self {
            Db::Sqlite(_) => Ok(true),
            Db::Postgres(_) => Ok(self
                .query_value::<bool>("SELECT pg_try_advisory_xact_lock(?1)", values![key])?
                .unwrap_or(false)),
        }
    }

    /// Takes, until the end of the open transaction, the locks named by `keys` (64-bit
    /// hashes of what must not be written by two transactions at once: a span, a response
    /// id, a session). Taken in ascending order, so two transactions never wait for each
    /// other in a circle. SQLite has one writer at a time already: a no-op there.
    pub(crate) fn lock_keys(&mut self, keys: &mut Vec<i64>) -> Result<()> {
        match self {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(client) => {
                keys.sort_unstable();
                keys.dedup();
                client.lock_keys(keys)
            }
        }
    }
}

/// Caches prepared statements by text, for engines whose client does not.
pub(crate) struct StatementCache<S> {
    statements: HashMap<String, S>,
}

impl<S> Default for StatementCache<S> {
    fn default() -> Self {
        Self {
            statements: HashMap::new(),
        }
    }
}

impl<S: Clone> StatementCache<S> {
    pub(crate) fn get_or_prepare(
        &mut self,
        sql: &str,
        prepare: impl FnOnce(&str) -> Result<S>,
    ) -> Result<S> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn clear(&mut self) {
        self.statements.clear();
    }
}

/// Rewrites SQLite's numbered placeholders (`?1`) to PostgreSQL's (`$1`). Statements in this
/// crate put no `?` inside string literals.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::both_engines;
    use crate::Connection;

    /// Inserts a feedback row (a table with integer, real, text and blob columns) from `params`:
    /// feedback_id, received_s, time_ns, link_trace_id, value, state, comment.
    fn insert_feedback(db: &mut Db, params: &[Value<'_>]) -> i64 {
        db.query_value::<i64>(
            "INSERT INTO feedback (feedback_id, received_s, time_ns, link_trace_id, value, state,
                 comment, signal, kind, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'thumbs_down', 'explicit', 'user')
             RETURNING id",
            params,
        )
        .unwrap()
        .unwrap()
    }

    type FeedbackColumns = (
        String,
        i64,
        i64,
        Option<Vec<u8>>,
        Option<f64>,
        bool,
        Option<String>,
    );

    fn read_feedback(db: &mut Db, id: i64) -> FeedbackColumns {
        db.query_opt(
            "SELECT feedback_id, received_s, time_ns, link_trace_id, value, state, comment
             FROM feedback WHERE id = ?1",
            values![id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            },
        )
        .unwrap()
        .unwrap()
    }

    fn every_value_kind_round_trips(conn: &mut Connection) {
        let db = &mut conn.db;
        let blob = [0u8, 255, 7, 0];
        let extremes = insert_feedback(
            db,
            values![
                "fb-ünïcode ✓",
                i64::MIN,
                i64::MAX,
                &blob,
                -1.5e300,
                true,
                "a\nb"
            ],
        );
        assert_eq!(
            read_feedback(db, extremes),
            (
                "fb-ünïcode ✓".to_owned(),
                i64::MIN,
                i64::MAX,
                Some(blob.to_vec()),
                Some(-1.5e300),
                true,
                Some("a\nb".to_owned())
            )
        );
        let empty: &[u8] = &[];
        let nulls = insert_feedback(
            db,
            values!["", 0i64, -1i64, empty, None::<f64>, false, None::<&str>],
        );
        // An empty blob is not NULL, and an empty string is not NULL, on either engine.
        assert_eq!(
            read_feedback(db, nulls),
            (String::new(), 0, -1, Some(Vec::new()), None, false, None)
        );
        let absent = insert_feedback(
            db,
            values!["fb-3", 1i64, 2i64, None::<&[u8]>, 0.1, false, ""],
        );
        let row = read_feedback(db, absent);
        assert_eq!(
            (row.3, row.4, row.6),
            (None, Some(0.1), Some(String::new()))
        );
        // An integer read as a real is widened; text read as an integer is a type error.
        assert_eq!(
            db.query_value::<f64>(
                "SELECT time_ns FROM feedback WHERE id = ?1",
                values![absent]
            )
            .unwrap(),
            Some(2.0)
        );
        let wrong = db
            .query_value::<i64>(
                "SELECT feedback_id FROM feedback WHERE id = ?1",
                values![absent],
            )
            .unwrap_err();
        assert!(
            matches!(
                wrong,
                StoreError::Type {
                    column: 0,
                    expected: "an integer",
                    ..
                }
            ),
            "{wrong}"
        );
        // Aggregates read as integers once cast (PostgreSQL's SUM of BIGINT is NUMERIC).
        assert_eq!(
            db.query_value::<i64>(
                "SELECT CAST(SUM(received_s + 1) AS BIGINT) FROM feedback WHERE id <> ?1",
                values![extremes]
            )
            .unwrap(),
            Some(3)
        );
        assert_eq!(
            db.query_value::<i64>("SELECT COUNT(*) FROM feedback", &[])
                .unwrap(),
            Some(3)
        );
    }

    fn placeholders_bind_by_number(conn: &mut Connection) {
        let db = &mut conn.db;
        // Out of order, and one placeholder used twice.
        db.execute(
            "INSERT INTO outbox (created_s, span) VALUES (?2, ?1), (?2, ?3)",
            values![&[1u8], 40i64, &[2u8]],
        )
        .unwrap();
        let spans = db
            .query(
                "SELECT span FROM outbox WHERE created_s = ?1 AND id > ?2 ORDER BY id",
                values![40i64, 0i64],
                |row| row.get::<Vec<u8>>(0),
            )
            .unwrap();
        assert_eq!(spans, vec![vec![1], vec![2]]);
        // Ten and more placeholders: ?10 must not be read as ?1 followed by 0.
        let mut params: Vec<Value<'_>> = (1..=11).map(Value::Int).collect();
        let count = |db: &mut Db, params: &[Value<'_>]| {
            db.query_value::<i64>(
                "SELECT COUNT(*) FROM outbox
                 WHERE created_s IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params,
            )
            .unwrap()
        };
        assert_eq!(count(db, &params), Some(0));
        params[9] = Value::Int(40);
        assert_eq!(count(db, &params), Some(2));
        assert!(db
            .exists("SELECT 1 FROM outbox WHERE span = ?1", values![&[2u8]])
            .unwrap());
        assert!(!db
            .exists("SELECT 1 FROM outbox WHERE span = ?1", values![&[3u8]])
            .unwrap());
    }

    fn a_transaction_dropped_uncommitted_leaves_nothing(conn: &mut Connection) {
        let count = |conn: &mut Connection, table: &str| {
            conn.db
                .query_value::<i64>(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .unwrap()
                .unwrap()
        };
        {
            let mut tx = conn.transaction().unwrap();
            tx.db
                .execute(
                    "INSERT INTO outbox (created_s, span) VALUES (1, ?1)",
                    values![&[9u8]],
                )
                .unwrap();
            let conn = &mut *tx;
            conn.interner
                .id(&mut conn.db, Some("model-a"))
                .unwrap()
                .unwrap();
            // Dropped here without a commit.
        }
        assert_eq!(count(conn, "outbox"), 0);
        // Interned strings are the exception on PostgreSQL, which commits a new one on its
        // own (see `postgres::Client::intern`).
        let strings = match conn.engine() {
            Engine::Sqlite => 0,
            Engine::Postgres => 1,
        };
        assert_eq!(count(conn, "strings"), strings);
        // The interner forgot the id it cached in the rolled-back transaction.
        let id = conn
            .interner
            .id(&mut conn.db, Some("model-a"))
            .unwrap()
            .unwrap();
        assert_eq!(
            conn.db
                .query_value::<String>("SELECT value FROM strings WHERE id = ?1", values![id])
                .unwrap()
                .as_deref(),
            Some("model-a")
        );
        let tx = conn.transaction().unwrap();
        tx.rollback().unwrap();
        let mut tx = conn.transaction().unwrap();
        tx.db
            .execute(
                "INSERT INTO outbox (created_s, span) VALUES (1, ?1)",
                values![&[9u8]],
            )
            .unwrap();
        tx.commit().unwrap();
        assert_eq!((count(conn, "outbox"), count(conn, "strings")), (1, 1));
    }

    fn a_read_transaction_reads_one_snapshot(store: &crate::testing::TestStore) {
        use crate::Access;
        let mut writer = store.open(Access::Writer);
        let mut reader = store.open(Access::Reader);
        let insert = |conn: &mut Connection| {
            conn.db
                .execute(
                    "INSERT INTO outbox (created_s, span) VALUES (1, ?1)",
                    values![&[1u8]],
                )
                .unwrap();
        };
        let count = |conn: &mut Connection| {
            conn.db
                .query_value::<i64>("SELECT COUNT(*) FROM outbox", &[])
                .unwrap()
                .unwrap()
        };
        insert(&mut writer);
        let mut tx = reader.read_transaction().unwrap();
        assert_eq!(count(&mut tx), 1);
        insert(&mut writer);
        assert_eq!(count(&mut tx), 1, "a write committed since is not seen");
        // Nor can it write.
        assert!(tx.db.execute("DELETE FROM outbox", &[]).is_err());
        drop(tx);
        assert_eq!(count(&mut reader), 2);
    }

    both_engines!(store: a_read_transaction_reads_one_snapshot);

    both_engines!(
        every_value_kind_round_trips,
        placeholders_bind_by_number,
        a_transaction_dropped_uncommitted_leaves_nothing,
    );

    #[test]
    fn placeholders_are_renumbered_for_postgres() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?10) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $10) AND d = '?'"
        );
    }

    #[test]
    fn sqlite_round_trips_every_value_kind() {
        let mut db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n INTEGER)")
            .unwrap();
        let blob = [1u8, 2, 3];
        assert_eq!(
            db.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
                values![7i64, 0.5, "x", &blob, None::<i64>],
            )
            .unwrap(),
            1
        );
        let row = db
            .query_opt("SELECT i, r, s, b, n FROM t", &[], |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<f64>(1)?,
                    row.get::<String>(2)?,
                    row.get::<Vec<u8>>(3)?,
                    row.get::<Option<i64>>(4)?,
                ))
            })
            .unwrap()
            .unwrap();
        assert_eq!(row, (7, 0.5, "x".to_owned(), vec![1, 2, 3], None));
        let wrong = db.query_value::<i64>("SELECT s FROM t", &[]).unwrap_err();
        assert!(
            matches!(wrong, StoreError::Type { column: 0, .. }),
            "{wrong}"
        );
    }
}
