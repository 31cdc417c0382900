//! Test stores on both engines, and rows written the way the receiver writes them.
//!
//! The stores: a SQLite file in a temporary directory, and a fresh
//! PostgreSQL database per test on the server `CLOSEDLOOP_TEST_POSTGRES_URL` names (so tests
//! run in parallel), dropped afterwards.
//!
//! Without the variable the PostgreSQL half of a test is skipped with a line on stderr,
//! unless `CLOSEDLOOP_TEST_REQUIRE_POSTGRES=1`, which makes it fail. `scripts/postgres.sh`
//! starts a server and prints the variable:
//!
//! ```sh
//! eval "$(scripts/postgres.sh start /tmp/pg)"; cargo test -p closedloop-store
//! ```
//!
//! A test body is a function taking `&mut Connection`; [`both_engines!`] makes one test of
//! it per engine:
//!
//! ```ignore
//! fn interns_once(conn: &mut Connection) { ... }
//! both_engines!(interns_once);
//! // tests `interns_once::sqlite` and `interns_once::postgres`
//! ```

// Other crates' tests (feature `testing`) use the stores only; the row helpers and the macro
// are for this crate's tests.
#![cfg_attr(not(test), allow(dead_code, unused_macros, unused_imports))]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{StoreConfig, StoreUrl};
use crate::connection::{Access, Connection};
use crate::db::values;
use crate::records::SpanRef;
use crate::Engine;

/// The server the PostgreSQL tests use.
const URL_VAR: &str = "CLOSEDLOOP_TEST_POSTGRES_URL";
/// Set to 1 to make a missing [`URL_VAR`] a failure rather than a skip.
const REQUIRE_VAR: &str = "CLOSEDLOOP_TEST_REQUIRE_POSTGRES";

/// A store for one test, removed when dropped.
#[derive(Debug)]
pub struct TestStore {
    config: StoreConfig,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    // Held for its Drop, which removes the directory; never read.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(PostgresDatabase),
}

impl TestStore {
    /// A new SQLite store in a temporary directory.
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StoreConfig {
            path: dir.path().join("closedloop.db"),
            ..StoreConfig::default()
        };
        TestStore {
            config,
            guard: Guard::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database; `None` (with a line on stderr) when the tests have
    /// no server. `test` names the test in that line.
    pub fn postgres(test: &str) -> Option<TestStore> {
        let Some(server) = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty()) else {
            if std::env::var(REQUIRE_VAR).is_ok_and(|value| value == "1") {
                panic!(
                    "{test}: {REQUIRE_VAR}=1 but {URL_VAR} is not set; \
                     eval \"$(scripts/postgres.sh start /tmp/pg)\" first"
                );
            }
            // Written to stderr itself, past the test harness's capture, so a run shows what
            // it skipped.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: PostgreSQL half skipped: {URL_VAR} is not set \
                 (eval \"$(scripts/postgres.sh start /tmp/pg)\" to run it)"
            );
            return None;
        };
        let database = PostgresDatabase::create(&server);
        let config = StoreConfig {
            engine: Engine::Postgres,
            url: Some(StoreUrl::new(database.url.clone())),
            ..StoreConfig::default()
        };
        Some(TestStore {
            config,
            guard: Guard::Postgres(database),
        })
    }

    /// The settings that open this store.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Opens a connection for `access` (the first writer creates and migrates the store).
    pub fn open(&self, access: Access) -> Connection {
        Connection::open(&self.config, access)
            .unwrap_or_else(|error| panic!("open the {} test store: {error}", self.config.engine))
    }

    /// The connection string of the PostgreSQL database (`None` on SQLite).
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        match &self.guard {
            Guard::Postgres(database) => Some(&database.url),
            Guard::Sqlite(_) => None,
        }
    }
}

/// A database created for one test on the tests' server, dropped (with any connection still
/// in it) when this is.
#[derive(Debug)]
struct PostgresDatabase {
    /// The server's own database, where this one is created and dropped from.
    server: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    fn create(server: &str) -> PostgresDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "closedloop_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin(server);
        // Each alone: neither runs inside a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .unwrap_or_else(|error| panic!("create test database {name}: {error:?}"));
        }
        PostgresDatabase {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(&self.server, postgres::NoTls).and_then(|mut admin| {
                admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            });
        if let Err(error) = dropped {
            eprintln!("drop test database {}: {error:?}", self.name);
        }
    }
}

fn admin(server: &str) -> postgres::Client {
    postgres::Client::connect(server, postgres::NoTls)
        .unwrap_or_else(|error| panic!("connect to {URL_VAR}: {error:?}"))
}

/// `url` with its database replaced by `database`, for `postgres://` URLs and libpq's
/// `key=value` strings.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={database}");
    };
    let authority = scheme_end + 3;
    let query = url[authority..].find('?').map(|at| authority + at);
    let path = url[authority..query.unwrap_or(url.len())]
        .find('/')
        .map(|at| authority + at);
    let (before, after) = match (path, query) {
        (Some(path), Some(query)) => (&url[..path], &url[query..]),
        (Some(path), None) => (&url[..path], ""),
        (None, Some(query)) => (&url[..query], &url[query..]),
        (None, None) => (url, ""),
    };
    format!("{before}/{database}{after}")
}

/// Runs `body` on a new SQLite store.
pub(crate) fn on_sqlite(body: impl FnOnce(&mut Connection)) {
    let store = TestStore::sqlite();
    body(&mut store.open(Access::Writer));
}

/// Runs `body` on a new PostgreSQL database, or skips (see [`TestStore::postgres`]); `test`
/// names the test in the line that says so.
pub(crate) fn on_postgres(test: &str, body: impl FnOnce(&mut Connection)) {
    let Some(store) = TestStore::postgres(test) else {
        return;
    };
    let mut conn = store.open(Access::Writer);
    body(&mut conn);
    drop(conn);
}

/// Runs `body` on two connections to a new PostgreSQL database: two receivers on one store.
/// Skipped like [`on_postgres`].
pub(crate) fn on_postgres_pair(test: &str, body: impl FnOnce(&mut Connection, &mut Connection)) {
    let Some(store) = TestStore::postgres(test) else {
        return;
    };
    let mut first = store.open(Access::Writer);
    let mut second = store.open(Access::Writer);
    body(&mut first, &mut second);
}

/// A distinct valid span for each `n`.
pub(crate) fn key(n: u8) -> SpanRef {
    SpanRef::new([n; 16], [n; 8]).unwrap()
}

/// A failure record's row.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) key: SpanRef,
    pub(crate) created_s: i64,
    pub(crate) category: &'static str,
    pub(crate) stage: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) signals: &'static str,
    pub(crate) revision: i64,
    pub(crate) triage_status: &'static str,
    pub(crate) owner: Option<&'static str>,
    pub(crate) due_s: Option<i64>,
}

impl Failure {
    pub(crate) fn new(key: SpanRef, created_s: i64) -> Self {
        Self {
            key,
            created_s,
            category: "other",
            stage: "unknown",
            severity: "medium",
            signals: "thumbs_down",
            revision: 1,
            triage_status: "open",
            owner: None,
            due_s: None,
        }
    }
}

pub(crate) fn insert_failure(conn: &mut Connection, failure: &Failure) {
    conn.db
        .execute(
            "INSERT INTO failures (trace_id, span_id, created_s, updated_s, category, stage,
                severity, signals, feedback_count, revision, enriched, triage_status, owner,
                due_s, breach_notified)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, 1, ?8, 1, ?9, ?10, ?11, 0)",
            values![
                &failure.key.trace_id,
                &failure.key.span_id,
                failure.created_s,
                failure.category,
                failure.stage,
                failure.severity,
                failure.signals,
                failure.revision,
                failure.triage_status,
                failure.owner,
                failure.due_s,
            ],
        )
        .unwrap();
}

/// An indexed response's row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Response {
    pub(crate) received_s: i64,
    pub(crate) template_id: Option<&'static str>,
    pub(crate) template_version: Option<&'static str>,
    pub(crate) model: Option<&'static str>,
    pub(crate) data_source: Option<&'static str>,
    pub(crate) chunk_ids: Option<Vec<String>>,
    pub(crate) fingerprint: Option<&'static str>,
    pub(crate) query: Option<&'static str>,
    pub(crate) output: Option<&'static str>,
}

/// Inserts the response of `key`; its row id.
pub(crate) fn insert_response(conn: &mut Connection, key: SpanRef, response: &Response) -> i64 {
    let mut ids = Vec::new();
    for value in [
        response.template_id,
        response.template_version,
        response.model,
        response.data_source,
    ] {
        ids.push(conn.interner.id(&mut conn.db, value).unwrap());
    }
    let chunk_ids = response
        .chunk_ids
        .as_deref()
        .map(crate::codec::encode_strings);
    let id = conn
        .db
        .query_value::<i64>(
            "INSERT INTO responses (trace_id, span_id, received_s, start_ns, duration_us,
                template_id, template_version, model, data_source, chunk_ids, fingerprint)
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            values![
                &key.trace_id,
                &key.span_id,
                response.received_s,
                ids[0],
                ids[1],
                ids[2],
                ids[3],
                chunk_ids.as_ref(),
                response.fingerprint,
            ],
        )
        .unwrap()
        .unwrap();
    if response.query.is_some() || response.output.is_some() {
        conn.db
            .execute(
                "INSERT INTO response_content (response, query, output) VALUES (?1, ?2, ?3)",
                values![id, response.query, response.output],
            )
            .unwrap();
    }
    id
}

/// Inserts feedback on `target` (`state` as in the schema: 0 waiting, 1 joined, 2 recorded
/// without its response, 3 not negative).
pub(crate) fn insert_feedback(
    conn: &mut Connection,
    feedback_id: &str,
    target: SpanRef,
    kind: &str,
    signal: &str,
    state: i64,
    received_s: i64,
) {
    conn.db
        .execute(
            "INSERT INTO feedback (feedback_id, received_s, time_ns, target_trace_id,
                target_span_id, link_trace_id, link_span_id, state, signal, kind, source)
             VALUES (?1, ?2, 0, ?3, ?4, ?3, ?4, ?5, ?6, ?7, 'user')",
            values![
                feedback_id,
                received_s,
                &target.trace_id,
                &target.span_id,
                state,
                signal,
                kind,
            ],
        )
        .unwrap();
}

/// One test per engine for each body `fn(&mut Connection)` named: `name::sqlite` and
/// `name::postgres`, in a module named after the body. With `store:` first, the bodies take
/// the `&TestStore`, to open several connections.
macro_rules! both_engines {
    (store: $($body:ident),+ $(,)?) => {
        $(
            mod $body {
                #[test]
                fn sqlite() {
                    super::$body(&$crate::testing::TestStore::sqlite());
                }

                #[test]
                fn postgres() {
                    if let Some(store) =
                        $crate::testing::TestStore::postgres(concat!(module_path!(), "::postgres"))
                    {
                        super::$body(&store);
                    }
                }
            }
        )+
    };
    ($($body:ident),+ $(,)?) => {
        $(
            mod $body {
                #[test]
                fn sqlite() {
                    $crate::testing::on_sqlite(super::$body);
                }

                #[test]
                fn postgres() {
                    $crate::testing::on_postgres(
                        concat!(module_path!(), "::postgres"),
                        super::$body,
                    );
                }
            }
        )+
    };
}
pub(crate) use both_engines;

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/closedloop", "t1"),
            "postgres://u@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "t1"),
            "postgres://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgres://h?connect_timeout=3", "t1"),
            "postgres://h/t1?connect_timeout=3"
        );
        assert_eq!(
            with_database("host=h user=u dbname=x", "t1"),
            "host=h user=u dbname=x dbname=t1"
        );
    }
}
