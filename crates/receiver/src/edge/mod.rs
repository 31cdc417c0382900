//! The network edge: how the listeners accept connections, how long they keep them, and who
//! may send spans.
//!
//! - [`Acceptor`] accepts while the listener has fewer than `server.max_connections` open
//!   connections; at the limit new connections wait in the kernel's backlog until one closes.
//!   Reaching the limit and failing to accept (for example `EMFILE`, out of file descriptors)
//!   are logged at most once per [`LOG_INTERVAL`]; a failed accept pauses the loop for
//!   [`ACCEPT_BACKOFF`] instead of spinning.
//! - [`http::serve`] runs the HTTP listeners with a deadline for each phase of a connection:
//!   request headers, request body, and the idle wait between keep-alive requests.
//! - [`grpc::GrpcEdge::incoming`] feeds tonic connection-limited sockets that must send the
//!   HTTP/2 preface within the header timeout; tonic's keepalive pings then find dead peers.
//! - [`auth`] checks the optional ingest token on both OTLP transports.

pub(crate) mod auth;
pub(crate) mod grpc;
pub(crate) mod http;
mod io;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;

pub use auth::{IngestToken, IngestTokenError};

/// The shortest interval between two log lines about the same listener condition.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// The connection limit and timeouts of one listener, from `[server]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EdgeLimits {
    /// The most connections open at once.
    pub(crate) max_connections: usize,
    /// From accepting a connection (or the first byte of a later request) to complete headers.
    pub(crate) header_read_timeout: Duration,
    /// From the request's headers to the end of its body.
    pub(crate) body_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub(crate) idle_timeout: Duration,
}

impl EdgeLimits {
    /// The limits of `[server]`; zeros are raised to the smallest useful value.
    pub(crate) fn from_config(config: &ServerConfig) -> Self {
        let secs = |secs: u64| Duration::from_secs(secs.max(1));
        Self {
            max_connections: config.max_connections.max(1),
            header_read_timeout: secs(config.header_read_timeout_secs),
            body_read_timeout: secs(config.body_read_timeout_secs),
            idle_timeout: secs(config.idle_timeout_secs),
        }
    }
}

/// A slot of the listener's connection limit, released when the connection closes.
pub(crate) type Slot = OwnedSemaphorePermit;

/// Accepts connections on one listener within its connection limit.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    /// The bound address, for log lines.
    addr: String,
    slots: Arc<Semaphore>,
    max_connections: usize,
    limit_log: LogLimiter,
    error_log: LogLimiter,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, max_connections: usize) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            addr: listener
                .local_addr()
                .map_or_else(|_| "unknown".to_owned(), |addr| addr.to_string()),
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            limit_log: LogLimiter::default(),
            error_log: LogLimiter::default(),
        }
    }

    /// The next connection, once a slot is free. Cancel-safe: a slot taken before the
    /// future is dropped is given back.
    pub(crate) async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr, Slot)> {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(suppressed) = self.limit_log.ready() {
                    tracing::warn!(
                        listener = %self.addr,
                        max_connections = self.max_connections,
                        suppressed,
                        "Connection limit reached; new connections wait for a free slot."
                    );
                }
                Arc::clone(&self.slots)
                    .acquire_owned()
                    .await
                    .map_err(std::io::Error::other)?
            }
        };
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    // Exports are small request/response exchanges; do not let Nagle delay them.
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, peer, slot));
                }
                // The peer gave up before we accepted: nothing to do about it.
                Err(error) if is_peer_error(&error) => {}
                Err(error) => {
                    if let Some(suppressed) = self.error_log.ready() {
                        tracing::warn!(
                            listener = %self.addr,
                            %error,
                            suppressed,
                            "Accepting a connection failed; pausing before the next attempt."
                        );
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Accept errors about one connection that went away, as opposed to the listener's own
/// trouble (out of file descriptors or memory), which calls for a pause.
fn is_peer_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

/// Lets one log line through per [`LOG_INTERVAL`] and counts the ones it held back.
#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(number of lines suppressed since the last one)` when a line may be logged now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let mut limiter = LogLimiter::default();
        assert_eq!(limiter.ready(), Some(0));
        assert_eq!(limiter.ready(), None);
        assert_eq!(limiter.ready(), None);
        limiter.last = limiter.last.and_then(|last| last.checked_sub(LOG_INTERVAL));
        assert_eq!(limiter.ready(), Some(2));
    }

    #[test]
    fn only_peer_errors_skip_the_backoff() {
        use std::io::{Error, ErrorKind};
        assert!(is_peer_error(&Error::from(ErrorKind::ConnectionAborted)));
        // EMFILE: the process is out of file descriptors.
        assert!(!is_peer_error(&Error::from_raw_os_error(24)));
        assert!(!is_peer_error(&Error::from(ErrorKind::OutOfMemory)));
    }
}
