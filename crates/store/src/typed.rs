//! Reading the typed values of the command queries: ids, the generated enums, lists.

use std::str::FromStr;

use crate::db::Row;
use crate::error::{Result, StoreError};
use crate::records::SpanRef;

/// A value of one of the generated enums, stored as its attribute value.
pub(crate) fn parse<T: FromStr>(row: &Row<'_>, index: usize, expected: &'static str) -> Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|_| StoreError::Type {
        column: index,
        found: "text of no known value",
        expected,
    })
}

/// Like [`parse`], for a nullable column.
pub(crate) fn parse_opt<T: FromStr>(
    row: &Row<'_>,
    index: usize,
    expected: &'static str,
) -> Result<Option<T>> {
    match row.get::<Option<String>>(index)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| StoreError::Type {
            column: index,
            found: "text of no known value",
            expected,
        }),
    }
}

/// The span whose trace id is at `index` and span id at `index + 1`.
pub(crate) fn span(row: &Row<'_>, index: usize) -> Result<SpanRef> {
    let trace_id: Vec<u8> = row.get(index)?;
    let span_id: Vec<u8> = row.get(index + 1)?;
    SpanRef::from_bytes(&trace_id, &span_id).ok_or(StoreError::Type {
        column: index,
        found: "a blob",
        expected: "a trace id and span id",
    })
}

/// A comma-separated list of enum values (`failures.signals`).
pub(crate) fn parse_list<T: FromStr>(
    row: &Row<'_>,
    index: usize,
    expected: &'static str,
) -> Result<Vec<T>> {
    let text: String = row.get(index)?;
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse().map_err(|_| StoreError::Type {
                column: index,
                found: "text of no known value",
                expected,
            })
        })
        .collect()
}
