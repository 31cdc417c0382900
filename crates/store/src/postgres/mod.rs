//! The PostgreSQL engine: a store shared by several receivers.
//!
//! The client is the synchronous face of `tokio-postgres` (the `postgres` crate): the store's
//! interface is synchronous because its writer is a dedicated thread that runs one group
//! commit after another, on either engine. Statements are prepared once per connection.

use std::error::Error;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::connection::Access;
use crate::db::{numbered_placeholders, Column, StatementCache, Value};
use crate::error::{Result, StoreError};

pub(crate) mod schema;

/// Connects to `url` for `access`; writers and commands bring the schema up to date.
pub(crate) fn open(url: &str, access: Access) -> Result<Client> {
    let mut client = Client::connect(url)?;
    if access != Access::Reader {
        schema::migrate(&mut client)?;
    }
    Ok(client)
}

/// One PostgreSQL connection with its prepared statements.
pub(crate) struct Client {
    client: postgres::Client,
    statements: StatementCache<postgres::Statement>,
}

impl Client {
    /// Connects to `url` (a libpq connection string or `postgres://` URL).
    pub(crate) fn connect(url: &str) -> Result<Self> {
        let config: postgres::Config = url
            .parse()
            .map_err(|error: postgres::Error| StoreError::Config(format!("store.url: {error}")))?;
        let client = config
            .connect(postgres::NoTls)
            .map_err(StoreError::postgres)?;
        Ok(Self {
            client,
            statements: StatementCache::default(),
        })
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        let client = &mut self.client;
        self.statements.get_or_prepare(sql, |sql| {
            client
                .prepare(&numbered_placeholders(sql))
                .map_err(StoreError::postgres)
        })
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        self.client
            .execute(&statement, &params)
            .map_err(StoreError::postgres)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<postgres::Row>> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        self.client
            .query(&statement, &params)
            .map_err(StoreError::postgres)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        let result = self.client.batch_execute(sql).map_err(StoreError::postgres);
        if result.is_err() && self.client.is_closed() {
            self.statements.clear();
        }
        result
    }

    /// Takes transaction-scoped advisory locks on `keys`, which the caller sorted.
    pub(crate) fn lock_keys(&mut self, keys: &[i64]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let statement = self.prepare(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(?1::BIGINT[]) AS k ORDER BY k) AS keys",
        )?;
        self.client
            .query_one(&statement, &[&keys])
            .map(|_| ())
            .map_err(StoreError::postgres)
    }
}

/// The column at `index` of `row`, by its PostgreSQL type.
pub(crate) fn column(row: &postgres::Row, index: usize) -> Result<Column<'_>> {
    let Some(described) = row.columns().get(index) else {
        return Err(StoreError::Type {
            column: index,
            found: "nothing",
            expected: "a column",
        });
    };
    let ty = described.type_().clone();
    let read = |error: postgres::Error| StoreError::postgres(error);
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(read)?
            .map_or(Column::Null, Column::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(read)?
            .map_or(Column::Null, |v| Column::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(read)?
            .map_or(Column::Null, |v| Column::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(read)?
            .map_or(Column::Null, |v| Column::Int(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map_err(read)?
            .map_or(Column::Null, Column::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map_err(read)?
            .map_or(Column::Null, |v| Column::Real(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<&str>>(index)
            .map_err(read)?
            .map_or(Column::Null, Column::Text),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(index)
            .map_err(read)?
            .map_or(Column::Null, Column::Blob),
        _ => {
            return Err(StoreError::Type {
                column: index,
                found: "a PostgreSQL type this store does not read (cast it)",
                expected: "bigint, double precision, text, bytea or boolean",
            })
        }
    })
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                Type::FLOAT8 => (value as f64).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Value::Real(value) => match *ty {
                Type::FLOAT8 => value.to_sql(ty, out),
                Type::FLOAT4 => (value as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be bound to a {ty} parameter").into()),
            },
            Value::Text(value) => value.to_sql(ty, out),
            Value::Blob(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows the variant.
        true
    }

    to_sql_checked!();
}
