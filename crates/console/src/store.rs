//! The console's store handle: a few connections of the same store layer the commands use,
//! each used on a blocking thread so the store never runs on the async reactor.

use std::sync::{Arc, Mutex};

use closedloop_engine::direct;
use closedloop_store::{Connection, StoreConfig};

use crate::error::PageError;

/// Connections kept for reuse; more are opened while these are busy.
const IDLE_CONNECTIONS: usize = 4;

/// Opens connections to the configured store on demand and keeps a few idle ones.
#[derive(Clone)]
pub(crate) struct Store {
    config: Arc<StoreConfig>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn new(config: StoreConfig) -> Self {
        Self {
            config: Arc::new(config),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `work` with a connection on a blocking thread. A connection whose work failed is
    /// dropped rather than reused (it may be in a bad state).
    pub(crate) async fn run<T, E>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, PageError>
    where
        T: Send + 'static,
        E: Into<PageError> + Send + 'static,
    {
        let store = self.clone();
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
