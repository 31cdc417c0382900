//! What tests outside this crate use to look into a store (and, on SQLite, to alter the file
//! underneath it): statements of their own, with plain values in and out, so no engine type
//! leaves this crate. Not part of the interface the receiver uses; every statement of
//! closedloop itself is a typed method of [`Connection`].

use std::path::Path;

use crate::connection::Connection;
use crate::db::{Column, Db, Value};
use crate::error::{Result, StoreError};
use crate::interner::Interner;

/// A value bound to a placeholder of an inspecting statement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param<'a> {
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes (ids).
    Blob(&'a [u8]),
}

/// A column of a row an inspecting statement returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Cell {
    /// The integer, if the cell holds one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The text, if the cell holds text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if the cell holds bytes.
    pub fn blob(&self) -> Option<&[u8]> {
        match self {
            Cell::Blob(bytes) => Some(bytes),
            _ => None,
        }
    }
}

fn values<'a>(params: &[Param<'a>]) -> Vec<Value<'a>> {
    params
        .iter()
        .map(|param| match *param {
            Param::Int(value) => Value::Int(value),
            Param::Text(text) => Value::Text(text),
            Param::Blob(bytes) => Value::Blob(bytes),
        })
        .collect()
}

impl From<Column<'_>> for Cell {
    fn from(column: Column<'_>) -> Self {
        match column {
            Column::Null => Cell::Null,
            Column::Int(value) => Cell::Int(value),
            Column::Real(value) => Cell::Real(value),
            Column::Text(text) => Cell::Text(text.to_owned()),
            Column::Blob(bytes) => Cell::Blob(bytes.to_vec()),
        }
    }
}

impl Connection {
    /// Runs an inspecting query; each row's first `columns` columns.
    #[doc(hidden)]
    pub fn inspect_rows(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        columns: usize,
    ) -> Result<Vec<Vec<Cell>>> {
        self.db.query(sql, &values(params), |row| {
            (0..columns).map(|index| row.cell(index)).collect()
        })
    }

    /// The integer in the first column of the first row of an inspecting query (a count, a
    /// pragma); an error when there is no row or it holds something else.
    #[doc(hidden)]
    pub fn inspect_int(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        self.db
            .query_value::<i64>(sql, &values(params))?
            .ok_or_else(|| StoreError::Config(format!("no row from {sql}")))
    }

    /// Runs an inspecting statement that changes rows; how many it changed.
    #[doc(hidden)]
    pub fn inspect_execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.db.execute(sql, &values(params))
    }

    /// Runs statements without parameters (a pragma, transaction control).
    #[doc(hidden)]
    pub fn inspect_batch(&mut self, sql: &str) -> Result<()> {
        self.db.batch(sql)
    }

    /// Opens the SQLite file at `path` as it is: not created, not migrated, read-only unless
    /// `writable`.
    #[doc(hidden)]
    pub fn inspect_sqlite_file(path: &Path, writable: bool) -> Result<Connection> {
        Ok(Connection {
            db: Db::Sqlite(crate::sqlite::open_file(path, writable)?),
            interner: Interner::default(),
        })
    }
}
