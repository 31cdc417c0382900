//! A connection to the store, on either engine, and its transactions.

use std::ops::{Deref, DerefMut};

use crate::config::StoreConfig;
use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::interner::Interner;
use crate::{postgres, sqlite, Engine};

/// What a connection is for, which decides how it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The receiver's writer: creates the store (and on SQLite its directory), migrates it,
    /// and sets the writer's cache and checkpoint settings.
    Writer,
    /// A command beside (or without) a running receiver: the store must exist; migrated.
    Command,
    /// Reading only (the exporter's outbox reads, reports).
    Reader,
}

/// One connection to the store. Every statement of closedloop is a method of this type (in
/// the modules beside this one), so the engine and the commands never see SQL.
#[derive(Debug)]
pub struct Connection {
    pub(crate) db: Db,
    /// Ids of interned strings (see [`Interner`]); cleared when a transaction rolls back.
    pub(crate) interner: Interner,
}

impl Connection {
    /// Closes the connection on a thread of its own. Closing a PostgreSQL connection blocks
    /// (its client runs a small runtime of its own), which must not happen on an async
    /// runtime's thread: an async task that owns a connection closes it this way.
    pub fn close_in_background(self) {
        let closing = std::thread::Builder::new()
            .name("closedloop-store-close".into())
            .spawn(move || drop(self));
        if let Err(error) = closing {
            tracing::warn!(%error, "Store connection not closed cleanly.");
        }
    }

    /// Opens a connection for `access` on the engine `config` names.
    pub fn open(config: &StoreConfig, access: Access) -> Result<Connection> {
        let db = match config.engine {
            Engine::Sqlite => Db::Sqlite(sqlite::open(config, access)?),
            Engine::Postgres => {
                let url = config.url.as_ref().ok_or_else(|| {
                    StoreError::Config(
                        "engine = \"postgres\" needs store.url (or CLOSEDLOOP_STORE_URL)".into(),
                    )
                })?;
                Db::Postgres(Box::new(postgres::open(url.expose(), access)?))
            }
        };
        Ok(Connection {
            db,
            interner: Interner::default(),
        })
    }

    /// The engine this connection runs on.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// Starts a write transaction; see [`Transaction`].
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.db.begin()?;
        Ok(Transaction {
            conn: self,
            done: false,
        })
    }

    /// Starts a read-only transaction: one consistent snapshot for every statement in it.
    pub fn read_transaction(&mut self) -> Result<Transaction<'_>> {
        self.db.begin_read()?;
        Ok(Transaction {
            conn: self,
            done: false,
        })
    }
}

/// An open transaction. It derefs to its [`Connection`], so every statement runs inside it;
/// [`Transaction::commit`] keeps what it wrote, and dropping it without a commit rolls back.
#[derive(Debug)]
pub struct Transaction<'a> {
    conn: &'a mut Connection,
    done: bool,
}

impl Transaction<'_> {
    /// Commits. On an error nothing of the transaction was kept.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        let result = self.conn.db.commit();
        if result.is_err() {
            self.conn.abandon();
        }
        result
    }

    /// Rolls back explicitly (dropping does the same).
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.conn.abandon();
        self.conn.db.rollback()
    }
}

impl Connection {
    /// Forgets what a rolled-back transaction may have cached.
    fn abandon(&mut self) {
        self.interner.clear();
        let _ = self.db.rollback();
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.abandon();
        }
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
    }
}
