//! What only PostgreSQL does: several connections at once (locks, conflicts, concurrent
//! migrations and interning), reconnecting, its schema versions, its connect errors.
//! Each test is skipped (or fails, see `testing`) without a test server.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::db::{values, Value};
use crate::error::StoreError;
use crate::testing::TestStore;
use crate::{Access, Connection, LockKey, StoreConfig, StoreUrl};

macro_rules! postgres_store {
    () => {
        match TestStore::postgres(concat!(module_path!(), "::", line!())) {
            Some(store) => store,
            None => return,
        }
    };
}

fn backend_pid(conn: &mut Connection) -> i64 {
    conn.db
        .query_value::<i64>("SELECT pg_backend_pid()", &[])
        .unwrap()
        .unwrap()
}

/// Waits until the backend `pid` waits for a lock. The bound only turns a hang into a
/// failure; nothing here depends on how long the wait takes.
fn wait_until_blocked(observer: &mut Connection, pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = observer
            .db
            .query_value::<Option<String>>(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?1",
                values![pid],
            )
            .unwrap()
            .flatten();
        if waiting.as_deref() == Some("Lock") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend {pid} never waited for a lock"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn outbox_rows(conn: &mut Connection) -> Vec<i64> {
    conn.db
        .query("SELECT created_s FROM outbox ORDER BY id", &[], |row| {
            row.get(0)
        })
        .unwrap()
}

fn insert_outbox(conn: &mut Connection, created_s: i64) {
    conn.db
        .execute(
            "INSERT INTO outbox (created_s, span) VALUES (?1, ?2)",
            values![created_s, &[1u8]],
        )
        .unwrap();
}

#[test]
fn lock_keys_makes_a_second_transaction_on_the_same_key_wait_for_the_first() {
    let store = postgres_store!();
    let mut first = store.open(Access::Writer);
    let mut second = store.open(Access::Writer);
    let mut observer = store.open(Access::Reader);
    let second_pid = backend_pid(&mut second);

    let session = LockKey::session("session-1");
    let mut tx = first.transaction().unwrap();
    tx.lock([session, LockKey::response_id("r-1"), session])
        .unwrap();
    let waiter = thread::spawn(move || {
        let mut tx = second.transaction().unwrap();
        tx.lock([session]).unwrap();
        // Holding the key, this transaction sees what the first one committed.
        let seen = outbox_rows(&mut tx);
        insert_outbox(&mut tx, 2);
        tx.commit().unwrap();
        seen
    });
    wait_until_blocked(&mut observer, second_pid);
    insert_outbox(&mut tx, 1);
    tx.commit().unwrap();

    assert_eq!(waiter.join().unwrap(), vec![1]);
    assert_eq!(outbox_rows(&mut first), vec![1, 2]);
}

#[test]
fn lock_keys_on_disjoint_keys_do_not_block() {
    let store = postgres_store!();
    let mut first = store.open(Access::Writer);
    let mut second = store.open(Access::Writer);
    // A lock that would wait fails at once instead, so a wrong wait fails the test rather
    // than hanging it.
    second.db.batch("SET lock_timeout = '50ms'").unwrap();

    let mut held = first.transaction().unwrap();
    held.db.lock_keys(&mut vec![1, 2]).unwrap();

    let mut tx = second.transaction().unwrap();
    tx.db.lock_keys(&mut vec![3, 4]).unwrap();
    insert_outbox(&mut tx, 3);
    tx.commit().unwrap();

    // The control: a key the first transaction holds does wait (and so times out here).
    let mut tx = second.transaction().unwrap();
    let error = tx.db.lock_keys(&mut vec![2, 5]).unwrap_err();
    assert!(error.to_string().contains("lock timeout"), "{error}");
    drop(tx);

    held.commit().unwrap();
    let mut tx = second.transaction().unwrap();
    tx.db.lock_keys(&mut vec![2, 5]).unwrap();
    tx.commit().unwrap();
    assert_eq!(outbox_rows(&mut second), vec![3]);
}

#[test]
fn a_deadlock_is_a_conflict_and_the_loser_keeps_nothing() {
    let store = postgres_store!();
    let both_hold_one = Arc::new(Barrier::new(2));
    let run = |key: i64, other: i64, created_s: i64| {
        let mut conn = store.open(Access::Writer);
        let both_hold_one = Arc::clone(&both_hold_one);
        thread::spawn(move || {
            let mut tx = conn.transaction().unwrap();
            insert_outbox(&mut tx, created_s);
            tx.db.lock_keys(&mut vec![key]).unwrap();
            both_hold_one.wait();
            // Each now waits for the key the other holds: PostgreSQL breaks the cycle by
            // failing one of them.
            let result = tx.db.lock_keys(&mut vec![other]).and_then(|()| tx.commit());
            (result, conn)
        })
    };
    let a = run(1, 2, 10);
    let b = run(2, 1, 20);
    let (a, mut conn_a) = a.join().unwrap();
    let (b, _) = b.join().unwrap();

    let (winner, loser) = match (&a, &b) {
        (Ok(()), Err(error)) => (10, error),
        (Err(error), Ok(())) => (20, error),
        _ => panic!("exactly one of the two must fail: {a:?} {b:?}"),
    };
    assert!(loser.is_conflict(), "{loser}");
    assert!(matches!(loser, StoreError::Conflict { .. }));
    assert_eq!(outbox_rows(&mut conn_a), vec![winner]);

    // The loser's connection runs the next transaction normally.
    let mut tx = conn_a.transaction().unwrap();
    insert_outbox(&mut tx, 30);
    tx.commit().unwrap();
    assert_eq!(outbox_rows(&mut conn_a), vec![winner, 30]);
}

#[test]
fn an_error_inside_a_transaction_makes_its_commit_fail_and_keep_nothing() {
    let store = postgres_store!();
    let mut conn = store.open(Access::Writer);
    let mut tx = conn.transaction().unwrap();
    insert_outbox(&mut tx, 1);
    tx.db
        .execute("INSERT INTO strings (value) VALUES ('a'), ('a')", &[])
        .unwrap_err();
    let error = tx.commit().unwrap_err();
    assert!(error.to_string().contains("strings_value_key"), "{error}");
    assert!(outbox_rows(&mut conn).is_empty());
    // The connection is fine afterwards.
    let mut tx = conn.transaction().unwrap();
    insert_outbox(&mut tx, 2);
    tx.commit().unwrap();
    assert_eq!(outbox_rows(&mut conn), vec![2]);
}

#[test]
fn receivers_migrating_at_once_all_succeed_and_migrate_once() {
    let store = postgres_store!();
    let config = store.config().clone();
    let start = Arc::new(Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                Connection::open(&config, Access::Writer).map(|_| ())
            })
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    let mut conn = store.open(Access::Command);
    let versions: Vec<i64> = conn
        .db
        .query(
            "SELECT version FROM closedloop_schema_version ORDER BY version",
            &[],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(versions, (1..=super::schema::VERSION).collect::<Vec<_>>());
}

#[test]
fn a_database_of_a_newer_version_is_refused() {
    let store = postgres_store!();
    let mut conn = store.open(Access::Writer);
    conn.db
        .execute(
            "INSERT INTO closedloop_schema_version (version) VALUES (?1)",
            values![super::schema::VERSION + 1],
        )
        .unwrap();
    let error = Connection::open(store.config(), Access::Writer).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::TooNew { found, supported }
                if found == super::schema::VERSION + 1 && supported == super::schema::VERSION
        ),
        "{error}"
    );
    // A reader does not migrate, so it opens.
    Connection::open(store.config(), Access::Reader).unwrap();
}

#[test]
fn strings_interned_by_two_connections_at_once_get_one_id_without_waiting() {
    let store = postgres_store!();
    let mut first = store.open(Access::Writer);
    let mut second = store.open(Access::Writer);

    let mut first_tx = first.transaction().unwrap();
    let conn = &mut *first_tx;
    let id = conn
        .interner
        .id(&mut conn.db, Some("gpt-x"))
        .unwrap()
        .unwrap();
    // The first transaction is still open: a string inserted inside it would make this
    // wait for it (or deadlock, with two strings in opposite orders). Each connection
    // interns in its own short transaction, so this finds the string at once.
    let mut second_tx = second.transaction().unwrap();
    let conn = &mut *second_tx;
    conn.db.batch("SET LOCAL lock_timeout = '1s'").unwrap();
    assert_eq!(
        conn.interner.id(&mut conn.db, Some("gpt-x")).unwrap(),
        Some(id)
    );
    let other = conn
        .interner
        .id(&mut conn.db, Some("gpt-y"))
        .unwrap()
        .unwrap();
    let conn = &mut *first_tx;
    assert_eq!(
        conn.interner.id(&mut conn.db, Some("gpt-y")).unwrap(),
        Some(other)
    );
    second_tx.commit().unwrap();
    // Rolling back leaves the string the other connection's rows refer to.
    first_tx.rollback().unwrap();
    assert_eq!(
        first
            .db
            .query(
                "SELECT id FROM strings WHERE value IN (?1, ?2) ORDER BY id",
                values!["gpt-x", "gpt-y"],
                |row| row.get::<i64>(0),
            )
            .unwrap(),
        vec![id, other]
    );
}

#[test]
fn a_dropped_connection_is_opened_again_at_the_next_transaction() {
    let store = postgres_store!();
    let mut conn = store.open(Access::Writer);
    let mut killer = store.open(Access::Reader);
    let terminate = |killer: &mut Connection, pid: i64| {
        assert_eq!(
            killer
                .db
                .query_value::<bool>(
                    "SELECT pg_terminate_backend(CAST(?1 AS INTEGER))",
                    values![pid]
                )
                .unwrap(),
            Some(true)
        );
    };

    let pid = backend_pid(&mut conn);
    terminate(&mut killer, pid);
    let mut tx = conn.transaction().unwrap();
    insert_outbox(&mut tx, 1);
    tx.commit().unwrap();
    let new_pid = backend_pid(&mut conn);
    assert_ne!(new_pid, pid);

    // Outside a transaction, the statement that finds the connection gone fails (it is not
    // run again: it may have been carried out), and the next one reconnects.
    terminate(&mut killer, new_pid);
    let _ = conn.db.query_value::<i64>("SELECT 1", &[]);
    assert_eq!(outbox_rows(&mut conn), vec![1]);

    // Inside one, the statement that finds the connection gone fails, the transaction is
    // lost, and the next one runs.
    let mut tx = conn.transaction().unwrap();
    insert_outbox(&mut tx, 2);
    let pid = backend_pid(&mut tx);
    terminate(&mut killer, pid);
    let error = tx
        .db
        .execute(
            "INSERT INTO outbox (created_s, span) VALUES (3, ?1)",
            values![&[1u8]],
        )
        .unwrap_err();
    assert!(!error.is_conflict(), "{error}");
    drop(tx);
    let mut tx = conn.transaction().unwrap();
    insert_outbox(&mut tx, 4);
    tx.commit().unwrap();
    assert_eq!(outbox_rows(&mut conn), vec![1, 4]);
}

#[test]
fn text_with_nul_is_stored_with_a_replacement_character() {
    let store = postgres_store!();
    let mut conn = store.open(Access::Writer);
    let id = conn
        .db
        .query_value::<i64>(
            "INSERT INTO strings (value) VALUES (?1) RETURNING id",
            values!["a\0b"],
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        conn.db
            .query_value::<String>("SELECT value FROM strings WHERE id = ?1", values![id])
            .unwrap()
            .as_deref(),
        Some("a\u{fffd}b")
    );
    // The same text finds the row it wrote.
    assert!(conn
        .db
        .exists("SELECT 1 FROM strings WHERE value = ?1", values!["a\0b"])
        .unwrap());
}

#[test]
fn values_of_the_wrong_type_for_a_parameter_are_refused() {
    let store = postgres_store!();
    let mut conn = store.open(Access::Writer);
    for (sql, value) in [
        ("SELECT 1 FROM strings WHERE value = ?1", Value::Int(1)),
        ("SELECT 1 FROM strings WHERE id = ?1", Value::Text("1")),
        ("SELECT 1 FROM outbox WHERE span = ?1", Value::Text("x")),
        ("SELECT 1 FROM strings WHERE id = ?1", Value::Blob(&[1])),
        ("SELECT 1 FROM strings WHERE id = ?1", Value::Real(0.5)),
    ] {
        let error = conn.db.exists(sql, &[value]).unwrap_err();
        assert!(
            error.to_string().contains("cannot be bound"),
            "{sql}: {error:?}"
        );
    }
}

#[test]
fn a_server_that_is_not_there_is_a_connect_error_that_says_where_and_what_to_check() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(StoreUrl::new(format!(
            "postgres://closedloop:secret@127.0.0.1:{port}/store"
        ))),
        ..StoreConfig::default()
    };
    let error = Connection::open(&config, Access::Writer).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Connect { .. }), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(
        message.contains("\"store\" as user \"closedloop\""),
        "{message}"
    );
    assert!(
        message.contains("listens on that host and port"),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn a_missing_database_is_a_connect_error_that_says_to_create_it() {
    let store = postgres_store!();
    let url = store.postgres_url().unwrap();
    let missing = format!("{}_missing", url.rsplit_once('/').map_or(url, |(_, db)| db));
    let config = StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(StoreUrl::new(crate::testing::with_database(url, &missing))),
        ..StoreConfig::default()
    };
    let message = Connection::open(&config, Access::Writer)
        .unwrap_err()
        .to_string();
    assert!(message.contains(&missing), "{message}");
    assert!(message.contains("create the database"), "{message}");
}

#[test]
fn a_url_that_requires_tls_is_a_connect_error_that_says_closedloop_has_none() {
    let store = postgres_store!();
    let url = store.postgres_url().unwrap();
    let config = StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(StoreUrl::new(format!("{url}?sslmode=require"))),
        ..StoreConfig::default()
    };
    let error = Connection::open(&config, Access::Writer).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Connect { .. }), "{message}");
    assert!(message.contains("without TLS"), "{message}");
}

/// Table, column, type and nullability of every column, and the names of the indexes: what
/// statements written once for both engines rely on.
type Shape = (Vec<(String, String, String, bool)>, Vec<String>);

fn sqlite_shape(conn: &mut Connection) -> Shape {
    let mut columns = conn
        .db
        .query(
            "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table'",
            &[],
            |row| {
                let ty = match row.get::<String>(2)?.as_str() {
                    "INTEGER" => "bigint",
                    "REAL" => "double precision",
                    "BLOB" => "bytea",
                    "TEXT" => "text",
                    other => panic!("a SQLite column of type {other}"),
                };
                // A primary key is never NULL, whatever SQLite declares for it.
                let not_null = row.get::<bool>(3)? || row.get::<i64>(4)? > 0;
                Ok((row.get(0)?, row.get(1)?, ty.to_owned(), not_null))
            },
        )
        .unwrap();
    columns.sort();
    let mut indexes: Vec<String> = conn
        .db
        .query(
            "SELECT name FROM sqlite_master
             WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'",
            &[],
            |row| row.get(0),
        )
        .unwrap();
    indexes.sort();
    (columns, indexes)
}

fn postgres_shape(conn: &mut Connection) -> Shape {
    let columns = conn
        .db
        .query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CAST(data_type AS TEXT),
                 CAST(is_nullable AS TEXT)
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name <> 'closedloop_schema_version'
             ORDER BY 1, 2",
            &[],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<String>(3)? == "NO",
                ))
            },
        )
        .unwrap();
    // The indexes of primary keys and UNIQUE constraints are named by PostgreSQL, by SQLite
    // not at all: only the indexes the schema names are compared.
    let indexes = conn
        .db
        .query(
            "SELECT CAST(i.relname AS TEXT)
             FROM pg_index x
                 JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_namespace n ON n.oid = i.relnamespace
             WHERE n.nspname = current_schema()
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
             ORDER BY 1",
            &[],
            |row| row.get(0),
        )
        .unwrap();
    (columns, indexes)
}

#[test]
fn the_postgres_schema_has_the_shape_of_the_sqlite_schema() {
    let store = postgres_store!();
    let sqlite = TestStore::sqlite();
    let (mut sqlite_columns, sqlite_indexes) = sqlite_shape(&mut sqlite.open(Access::Writer));
    let (postgres_columns, postgres_indexes) = postgres_shape(&mut store.open(Access::Writer));
    sqlite_columns.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        postgres_columns, sqlite_columns,
        "a SQLite migration without its PostgreSQL twin (postgres/schema.rs)?"
    );
    assert_eq!(postgres_indexes, sqlite_indexes);
}

#[test]
fn a_reader_cannot_write() {
    let store = postgres_store!();
    let mut writer = store.open(Access::Writer);
    insert_outbox(&mut writer, 1);
    let mut reader = store.open(Access::Reader);
    assert_eq!(outbox_rows(&mut reader), vec![1]);
    let error = reader
        .db
        .execute(
            "INSERT INTO outbox (created_s, span) VALUES (2, ?1)",
            values![&[1u8]],
        )
        .unwrap_err();
    assert!(error.to_string().contains("read-only"), "{error}");
    assert_eq!(outbox_rows(&mut writer), vec![1]);
}

#[test]
fn sessions_end_idle_transactions_and_probe_silent_clients_unless_the_url_says_otherwise() {
    let store = postgres_store!();
    let show = |conn: &mut Connection, setting: &str| {
        conn.db
            .query_value::<String>(&format!("SHOW {setting}"), &[])
            .unwrap()
            .unwrap()
    };
    let mut conn = store.open(Access::Writer);
    assert_eq!(
        show(&mut conn, "idle_in_transaction_session_timeout"),
        "5min"
    );
    assert_eq!(show(&mut conn, "tcp_keepalives_idle"), "30");
    assert_eq!(show(&mut conn, "default_transaction_read_only"), "off");
    assert_eq!(
        show(
            &mut store.open(Access::Reader),
            "default_transaction_read_only"
        ),
        "on"
    );

    let url = store.postgres_url().unwrap();
    let config = StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(StoreUrl::new(format!(
            "{url}?options=-c%20idle_in_transaction_session_timeout%3D7s"
        ))),
        ..StoreConfig::default()
    };
    let mut conn = Connection::open(&config, Access::Writer).unwrap();
    assert_eq!(show(&mut conn, "idle_in_transaction_session_timeout"), "7s");
    assert_eq!(show(&mut conn, "tcp_keepalives_idle"), "30");
}

#[test]
fn a_role_that_may_only_read_and_write_opens_a_migrated_database() {
    let store = postgres_store!();
    let url = store.postgres_url().unwrap().to_owned();
    let role = format!("closedloop_dml_{}", std::process::id());
    let mut owner = store.open(Access::Writer);
    owner
        .db
        .batch(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
             REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        ))
        .unwrap();
    let as_role = url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(
        as_role, url,
        "the test server's URL names the postgres user"
    );
    let config = StoreConfig {
        engine: crate::Engine::Postgres,
        url: Some(StoreUrl::new(as_role)),
        ..StoreConfig::default()
    };
    let opened = Connection::open(&config, Access::Writer).map(|mut conn| {
        insert_outbox(&mut conn, 1);
        outbox_rows(&mut conn)
    });
    owner
        .db
        .batch(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
    assert_eq!(opened.unwrap(), vec![1]);
}

#[test]
fn receivers_indexing_the_same_new_template_do_not_wait_for_each_other() {
    use crate::records::{Response, SpanRef, Template};
    let store = postgres_store!();
    let mut first = store.open(Access::Writer);
    let mut second = store.open(Access::Writer);
    let response = |n: u8| Response {
        span: SpanRef::new([n; 16], [n; 8]),
        template: Template {
            id: Some("support".into()),
            version: Some("4".into()),
            hash: Some(format!("sha256:{}", "cd".repeat(32))),
            text: Some("You help, briefly.".into()),
        },
        model: Some("gpt-5".into()),
        ..Response::default()
    };
    let index = |conn: &mut Connection, n: u8| {
        let response = response(n);
        assert!(conn
            .insert_response(&response, response.span.unwrap(), 100, true)
            .unwrap());
    };

    let mut first_tx = first.transaction().unwrap();
    index(&mut first_tx, 1);
    // Another receiver meets the same new template (and strings) while the first
    // transaction is open: it neither waits (a wait would end at the lock timeout) nor
    // deadlocks.
    let mut second_tx = second.transaction().unwrap();
    second_tx.db.batch("SET LOCAL lock_timeout = '1s'").unwrap();
    index(&mut second_tx, 2);
    second_tx.commit().unwrap();
    first_tx.rollback().unwrap();

    let found = first
        .response_by_span(SpanRef::new([2; 16], [2; 8]).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(found.template.version.as_deref(), Some("4"));
    assert_eq!(
        first
            .db
            .query("SELECT text FROM templates", &[], |row| row
                .get::<String>(0))
            .unwrap(),
        vec!["You help, briefly.".to_owned()]
    );
    assert!(first
        .response_by_span(SpanRef::new([1; 16], [1; 8]).unwrap())
        .unwrap()
        .is_none());
}
