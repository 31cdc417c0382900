//! The HTTP/1.1 server of the OTLP/HTTP and feedback listeners.
//!
//! Each connection runs under three deadlines, measured by the connection itself
//! ([`Activity`]) rather than by hyper, whose header timer also runs while a keep-alive
//! connection waits for its next request:
//!
//! - **headers**: a new connection must deliver a complete request head within
//!   `header_read_timeout`; on a keep-alive connection the clock starts at the first byte of
//!   the next request;
//! - **body**: the body must be read within `body_read_timeout` of its headers, however slowly
//!   it trickles in; after that the handler's read fails and the request is answered 400;
//! - **idle**: a keep-alive connection that sends nothing for `idle_timeout` after a response
//!   is closed.
//!
//! A connection past its header or idle deadline has no request in progress, so closing it
//! loses nothing. On shutdown the listener closes at once and every connection finishes its
//! request in progress, then closes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use super::io::EdgeIo;
use super::{Acceptor, EdgeLimits};

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the connections to finish their requests in progress.
///
/// Requests carry `ConnectInfo<SocketAddr>` with the peer's address.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut acceptor = Acceptor::new(listener, limits.max_connections);
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.accept() => {
                let (stream, peer, slot) = accepted?;
                let activity = Arc::new(Activity::new());
                let io = EdgeIo::new(stream, slot).with_activity(Arc::clone(&activity));
                connections.spawn(serve_connection(
                    io,
                    peer,
                    router.clone(),
                    activity,
                    limits,
                    stopped.clone(),
                ));
            }
            // Reap finished connections so their results do not pile up.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Close the listening socket first: new clients are refused rather than left waiting.
    drop(acceptor);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    io: EdgeIo,
    peer: SocketAddr,
    router: Router,
    activity: Arc<Activity>,
    limits: EdgeLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let in_flight = InFlight::start(Arc::clone(&activity));
            let body_deadline = Instant::now() + limits.body_read_timeout;
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = Body::new(DeadlineBody::new(
                body,
                body_deadline,
                limits.body_read_timeout,
            ));
            let request = http::Request::from_parts(parts, body);
            let router = router.clone();
            async move {
                let response: Result<_, Infallible> = router.oneshot(request).await;
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines are the connection's own (see the module docs).
    builder.keep_alive(true).header_read_timeout(None);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&limits);
        let changed = activity.changed.notified();
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "HTTP connection ended with an error.");
                }
                return;
            }
            _ = stopped.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = changed => {}
            () = sleep_until(deadline) => {
                let expired = activity
                    .deadline(&limits)
                    .is_some_and(|deadline| deadline <= Instant::now());
                if expired {
                    tracing::debug!(%peer, "HTTP connection closed: no request in time.");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its header and idle deadlines.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<ActivityState>,
    /// Signalled when a request finishes, which moves the deadline.
    changed: Notify,
}

#[derive(Debug)]
struct ActivityState {
    /// Requests being served.
    in_flight: usize,
    /// Whether a request has been served on this connection.
    served: bool,
    /// When the connection was accepted or last finished a request.
    idle_since: Instant,
    /// The first byte read since `idle_since`: a request head is arriving.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                served: false,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state is plain data updated in single steps; a panic elsewhere cannot leave it
        // half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived from the peer.
    pub(crate) fn on_read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }

    /// When the connection must be closed if nothing changes; `None` while a request runs.
    fn deadline(&self, limits: &EdgeLimits) -> Option<Instant> {
        let state = self.state();
        if state.in_flight > 0 {
            None
        } else if !state.served {
            Some(state.idle_since + limits.header_read_timeout)
        } else if let Some(started) = state.head_started {
            Some(started + limits.header_read_timeout)
        } else {
            Some(state.idle_since + limits.idle_timeout)
        }
    }
}

/// A request being served; dropping it (response ready, or connection gone) ends it.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.state().in_flight += 1;
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.served = true;
                state.idle_since = Instant::now();
                state.head_started = None;
            }
        }
        self.0.changed.notify_one();
    }
}

/// The request body was not received within `server.body_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", timeout.as_secs())]
pub(crate) struct BodyTimeout {
    timeout: Duration,
}

/// A request body that fails once its deadline has passed.
#[derive(Debug)]
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: Instant, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            timeout,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Checked first, so a body that keeps trickling in is cut off too.
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout {
                timeout: this.timeout,
            }
            .into())));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
