//! The console's store handle: a few connections of the same store layer the commands use,
//! each used on a blocking thread so the store never runs on the async reactor.

use std::sync::{Arc, Mutex};

use closedloop_engine::direct;
use closedloop_store::{Connection, StoreConfig};

use crate::error::PageError;

/// Connections kept for reuse.
const IDLE_CONNECTIONS: usize = 4;

/// Store tasks at once (so connections at once); further requests wait their turn, so a burst
/// of page loads cannot take a shared PostgreSQL's connections from the receivers.
const MAX_CONNECTIONS: usize = 8;

/// Opens connections to the configured store on demand and keeps a few idle ones.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    idle: Mutex<Vec<Connection>>,
    busy: tokio::sync::Semaphore,
}

impl Drop for Inner {
    /// Closes the idle connections on a thread of their own: closing a PostgreSQL connection
    /// blocks, which must not happen on the async runtime the console is dropped on.
    fn drop(&mut self) {
        let idle = std::mem::take(
            self.idle
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !idle.is_empty() {
            let closing = std::thread::Builder::new()
                .name("console-store-close".into())
                .spawn(move || drop(idle));
            if let Err(error) = closing {
                tracing::warn!(%error, "Console store connections not closed cleanly.");
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn new(config: StoreConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
                busy: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
            }),
        }
    }

    /// Runs `work` with a connection on a blocking thread, at most [`MAX_CONNECTIONS`] at once.
    /// A connection whose work failed is dropped rather than reused (it may be broken, as
    /// after a database restart), so the next request opens a fresh one.
    pub(crate) async fn run<T, E>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, PageError>
    where
        T: Send + 'static,
        E: Into<PageError> + Send + 'static,
    {
        let _permit = self
            .inner
            .busy
            .acquire()
            .await
            .map_err(|error| PageError::Internal(format!("store: {error}")))?;
        let store = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let idle = store.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match idle {
                Some(conn) => conn,
                None => direct::connect(&store.config)?,
            };
            let result = work(&mut conn).map_err(Into::into);
            if result.is_ok() {
                if let Ok(mut idle) = store.idle.lock() {
                    if idle.len() < IDLE_CONNECTIONS {
                        idle.push(conn);
                    }
                }
            }
            result
        })
        .await
        .map_err(|error| PageError::Internal(format!("store task: {error}")))?
    }
}
