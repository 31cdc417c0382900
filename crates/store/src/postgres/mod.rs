//! The PostgreSQL engine: a store shared by several receivers.
//!
//! The client is the synchronous face of `tokio-postgres` (the `postgres` crate): the store's
//! interface is synchronous because its writer is a dedicated thread that runs one group
//! commit after another, on either engine. Statements are prepared once per connection.

use std::error::Error;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::connection::Access;
use crate::db::{numbered_placeholders, Column, StatementCache, Value};
use crate::error::{Result, StoreError};

pub(crate) mod schema;
#[cfg(test)]
mod tests;

/// How long connecting may take when the connection string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session settings of every connection, before those the connection string sets (which
/// win). A receiver that stops answering in the middle of a transaction (a hung process, a
/// network partition: no connection reset reaches the server) would hold its row and
/// advisory locks, and so stall every other receiver, until TCP gave up hours later: the
/// server ends a transaction idle for five minutes, and probes a silent client after 30 s.
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=300000 \
     -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3";

/// How often the client probes a silent server.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Connects to `url` for `access`; writers and commands bring the schema up to date.
pub(crate) fn open(url: &str, access: Access) -> Result<Client> {
    let mut client = Client::connect(url, access == Access::Reader)?;
    if access != Access::Reader {
        schema::migrate(&mut client)?;
    }
    Ok(client)
}

/// One PostgreSQL connection with its prepared statements.
///
/// A connection the server dropped (a restart, a failover, an idle timeout) is opened again
/// at the next transaction, or at the next statement outside one: a transaction it was in is
/// lost with it (the server rolled it back), and its caller saw the error.
pub(crate) struct Client {
    config: postgres::Config,
    client: postgres::Client,
    statements: StatementCache<postgres::Statement>,
    /// Between `BEGIN` and its `COMMIT` or `ROLLBACK`.
    in_transaction: bool,
    /// The first error inside the open transaction: PostgreSQL ignores every later statement
    /// of the transaction and turns its `COMMIT` into a rollback, so the commit reports this.
    aborted: Option<StoreError>,
    /// An error said the server ended the connection (which the client may notice later).
    lost: bool,
    /// A second session, for what is committed apart from the open transaction
    /// ([`Client::intern`]); opened when first needed.
    side: Option<postgres::Client>,
}

impl Client {
    /// Connects to `url` (a libpq connection string or `postgres://` URL). The sessions of a
    /// `read_only` client refuse writes, as a SQLite reader does.
    pub(crate) fn connect(url: &str, read_only: bool) -> Result<Self> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|error: postgres::Error| StoreError::Config(format!("store.url: {error}")))?;
        if config.get_application_name().is_none() {
            config.application_name("closedloop");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(KEEPALIVE_IDLE);
        // Startup options, so a reconnected session has them too.
        let mut options = SESSION_OPTIONS.to_owned();
        if read_only {
            options.push_str(" -c default_transaction_read_only=on");
        }
        if let Some(theirs) = config.get_options() {
            options = format!("{options} {theirs}");
        }
        config.options(&options);
        let client = connect(&config)?;
        Ok(Self {
            config,
            client,
            statements: StatementCache::default(),
            in_transaction: false,
            aborted: None,
            lost: false,
            side: None,
        })
    }

    /// Opens the connection again when the server dropped it, outside a transaction.
    fn reconnect_if_closed(&mut self) -> Result<()> {
        if self.is_lost() && !self.in_transaction {
            self.reconnect()?;
        }
        Ok(())
    }

    fn is_lost(&self) -> bool {
        self.lost || self.client.is_closed()
    }

    fn reconnect(&mut self) -> Result<()> {
        self.statements.clear();
        self.client = connect(&self.config)?;
        self.lost = false;
        tracing::info!("Reconnected to PostgreSQL.");
        Ok(())
    }

    /// Maps an error, remembering it when it aborted the open transaction.
    fn fail(&mut self, error: postgres::Error) -> StoreError {
        let ended = ends_connection(&error);
        self.note(StoreError::postgres(error), ended)
    }

    /// Remembers what a mapped error means: a connection `ended`, an aborted transaction.
    fn note(&mut self, error: StoreError, ended: bool) -> StoreError {
        self.lost |= ended;
        if self.in_transaction && self.aborted.is_none() {
            self.aborted = Some(error.clone());
        }
        error
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        self.reconnect_if_closed()?;
        let client = &mut self.client;
        let mut ended = false;
        let statement = self.statements.get_or_prepare(sql, |sql| {
            client
                .prepare(&numbered_placeholders(sql))
                .map_err(|error| {
                    ended = ends_connection(&error);
                    StoreError::postgres(error)
                })
        });
        statement.map_err(|error| self.note(error, ended))
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let result = self.client.execute(&statement, &params);
        result.map_err(|error| self.fail(error))
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<postgres::Row>> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let result = self.client.query(&statement, &params);
        result.map_err(|error| self.fail(error))
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.reconnect_if_closed()?;
        let result = self.client.batch_execute(sql);
        result.map_err(|error| self.fail(error))
    }

    /// Starts a transaction with `begin` (`BEGIN ...`). A connection found dropped here is
    /// opened again: nothing was in flight on it.
    pub(crate) fn begin(&mut self, begin: &str) -> Result<()> {
        if self.in_transaction {
            // A transaction left open by an error on a dropped connection: it is gone.
            self.rollback()?;
        }
        self.reconnect_if_closed()?;
        if let Err(error) = self.client.batch_execute(begin) {
            if !(ends_connection(&error) || self.client.is_closed()) {
                return Err(StoreError::postgres(error));
            }
            self.reconnect()?;
            self.client
                .batch_execute(begin)
                .map_err(|error| self.fail(error))?;
        }
        self.in_transaction = true;
        self.aborted = None;
        Ok(())
    }

    /// Commits the open transaction, or reports why PostgreSQL will not (an earlier error
    /// aborted it; it is rolled back).
    pub(crate) fn commit(&mut self) -> Result<()> {
        if let Some(error) = self.aborted.take() {
            self.rollback()?;
            return Err(error);
        }
        let result = self.client.batch_execute("COMMIT");
        self.in_transaction = false;
        // On a connection lost here the outcome is unknown: the caller sees an error, and what
        // it retries must be idempotent (as ingest is).
        result.map_err(|error| self.fail(error))
    }

    /// Rolls back the open transaction; a no-op on a dropped connection (the server rolled
    /// it back when the connection went).
    pub(crate) fn rollback(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.aborted = None;
        if self.is_lost() {
            return Ok(());
        }
        let result = self.client.batch_execute("ROLLBACK");
        result.map_err(|error| self.fail(error))
    }

    /// The second session ([`Client::intern`], [`Client::execute_apart`]), opened when first
    /// needed.
    fn side(&mut self) -> Result<&mut postgres::Client> {
        let side = match self.side.take() {
            Some(side) => side,
            None => connect(&self.config)?,
        };
        Ok(self.side.insert(side))
    }

    /// Maps an error of the second session, which is opened again at its next use.
    fn side_failed(&mut self, error: postgres::Error) -> StoreError {
        self.side = None;
        StoreError::postgres(error)
    }

    /// The id of `value` in `strings`, inserting it when missing, in a transaction of its own
    /// on a second session: a new string is committed at once, so the group transaction of
    /// another receiver that meets the same new string neither waits for this one's nor
    /// deadlocks with it (two receivers each inserting two new strings, in opposite orders).
    /// A string whose transaction then rolls back stays, unreferenced: strings are few.
    pub(crate) fn intern(&mut self, value: &str) -> Result<i64> {
        let side = self.side()?;
        let value = Value::Text(value);
        let params: [&(dyn ToSql + Sync); 1] = [&value];
        let result = side
            .query_opt(
                "INSERT INTO strings (value) VALUES ($1) ON CONFLICT (value) DO NOTHING RETURNING id",
                &params,
            )
            .and_then(|inserted| match inserted {
                Some(row) => row.try_get::<_, i64>(0),
                None => side
                    .query_one("SELECT id FROM strings WHERE value = $1", &params)?
                    .try_get::<_, i64>(0),
            });
        result.map_err(|error| self.side_failed(error))
    }

    /// Runs `sql` on the second session, committed at once: for idempotent inserts of data
    /// several receivers share (template text), for the reason [`Client::intern`] gives.
    pub(crate) fn execute_apart(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        let side = self.side()?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let result = side.execute(&numbered_placeholders(sql), &params);
        result.map_err(|error| self.side_failed(error))
    }

    /// Takes transaction-scoped advisory locks on `keys`, which the caller sorted.
    pub(crate) fn lock_keys(&mut self, keys: &[i64]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let statement = self.prepare(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(?1::BIGINT[]) AS k ORDER BY k) AS keys",
        )?;
        let result = self.client.query_one(&statement, &[&keys]);
        result.map(|_| ()).map_err(|error| self.fail(error))
    }
}

/// Whether `error` means the server ended the connection: the client closed it, the socket
/// failed, or the server sent a FATAL error (it was shut down or terminated the backend).
fn ends_connection(error: &postgres::Error) -> bool {
    error.is_closed()
        || error
            .as_db_error()
            .is_some_and(|db| db.parsed_severity() == Some(postgres::error::Severity::Fatal))
        || std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// Connects, with an error that says where and what to check.
fn connect(config: &postgres::Config) -> Result<postgres::Client> {
    config
        .connect(postgres::NoTls)
        .map_err(|error| StoreError::Connect {
            target: describe(config),
            hint: hint(config, &error),
            cause: std::sync::Arc::new(crate::error::PostgresError(error)),
        })
}

/// Host, port, database and user of `config`, for errors; never the password.
fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(index)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!(
        "{hosts}, database {:?} as user {:?}",
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default(),
        config.get_user().unwrap_or_default()
    )
}

/// What to check when connecting failed with `error`.
fn hint(config: &postgres::Config, error: &postgres::Error) -> &'static str {
    let code = error.code();
    if code == Some(&SqlState::INVALID_PASSWORD)
        || code == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        "check the user and password in store.url (or CLOSEDLOOP_STORE_URL), and that the server's pg_hba.conf admits this client without TLS"
    } else if code == Some(&SqlState::INVALID_CATALOG_NAME) {
        "create the database (createdb) or name an existing one in store.url"
    } else if code == Some(&SqlState::TOO_MANY_CONNECTIONS) {
        "the server has no connection slot left: raise its max_connections or run fewer receivers"
    } else if code == Some(&SqlState::CANNOT_CONNECT_NOW) {
        "the server is starting or stopping; start the receiver again once it is up"
    } else if config.get_ssl_mode() == postgres::config::SslMode::Require {
        "closedloop connects without TLS: remove sslmode=require from store.url and reach the server over a trusted network or a local TLS tunnel"
    } else if code.is_some() {
        "the server refused the connection; see its log"
    } else {
        "check that the server runs and listens on that host and port (listen_addresses, firewalls), and store.url (or CLOSEDLOOP_STORE_URL)"
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
            Value::Text(value) => match *ty {
                // PostgreSQL text cannot hold NUL, which client input may carry (JSON
                // allows "\u0000"): it is stored as U+FFFD rather than failing the batch.
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME if value.contains('\0') => {
                    value.replace('\0', "\u{fffd}").as_str().to_sql(ty, out)
                }
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => value.to_sql(ty, out),
                _ => Err(format!("text cannot be bound to a {ty} parameter").into()),
            },
            Value::Blob(value) => match *ty {
                Type::BYTEA => value.to_sql(ty, out),
                _ => Err(format!("a blob cannot be bound to a {ty} parameter").into()),
            },
            Value::Blobs(values) => match *ty {
                Type::BYTEA_ARRAY => values.to_sql(ty, out),
                _ => Err(format!("a list of blobs cannot be bound to a {ty} parameter").into()),
            },
            Value::Ints(values) => match *ty {
                Type::INT8_ARRAY => values.to_sql(ty, out),
                _ => Err(format!("a list of integers cannot be bound to a {ty} parameter").into()),
            },
            Value::Texts(values) => match *ty {
                Type::TEXT_ARRAY | Type::VARCHAR_ARRAY
                    if values.iter().any(|v| v.contains('\0')) =>
                {
                    let replaced: Vec<String> =
                        values.iter().map(|v| v.replace('\0', "\u{fffd}")).collect();
                    replaced.to_sql(ty, out)
                }
                Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => values.to_sql(ty, out),
                _ => Err(format!("a list of texts cannot be bound to a {ty} parameter").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows the variant.
        true
    }

    to_sql_checked!();
}
