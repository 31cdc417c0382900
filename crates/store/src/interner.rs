//! Interned low-cardinality strings.

use std::collections::HashMap;

use crate::db::{values, Db};
use crate::error::{Result, StoreError};

/// Interns low-cardinality strings (template ids and versions, models, data sources, index
/// versions, parameter sets) into the `strings` table, caching ids in memory.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    cache: HashMap<String, i64>,
}

/// The most strings the interner caches; the cache is cleared when it grows past this.
const INTERNER_CACHE: usize = 65_536;

impl Interner {
    /// Forgets cached ids (after a rollback, they may name rows that no longer exist).
    pub(crate) fn clear(&mut self) {
        self.cache.clear();
    }

    pub(crate) fn id(&mut self, db: &mut Db, value: Option<&str>) -> Result<Option<i64>> {
        let Some(value) = value else {
            return Ok(None);
        };
        if let Some(&id) = self.cache.get(value) {
            return Ok(Some(id));
        }
        let found =
            db.query_value::<i64>("SELECT id FROM strings WHERE value = ?1", values![value])?;
        let id = match (found, db) {
            (Some(id), _) => id,
            // Inserted apart from the open transaction, so receivers never wait for each
            // other's transactions over a new string (see `postgres::Client::intern`).
            (None, Db::Postgres(client)) => client.intern(value)?,
            // One writer at a time: inserted in the open transaction.
            (None, db) => match db.query_value::<i64>(
                "INSERT INTO strings (value) VALUES (?1) ON CONFLICT (value) DO NOTHING RETURNING id",
                values![value],
            )? {
                Some(id) => id,
                None => db
                    .query_value::<i64>("SELECT id FROM strings WHERE value = ?1", values![value])?
                    .ok_or(StoreError::Type {
                        column: 0,
                        found: "nothing",
                        expected: "an interned string",
                    })?,
            },
        };
        if self.cache.len() >= INTERNER_CACHE {
            self.cache.clear();
        }
        self.cache.insert(value.to_owned(), id);
        Ok(Some(id))
    }
}
