//! What the OTLP/gRPC listener needs from the edge: connection-limited sockets and the
//! server options of `[server]`.

use std::time::Duration;

use futures_util::Stream;
use tokio::net::TcpListener;

use super::auth::{GrpcAuth, IngestToken};
use super::io::EdgeIo;
use super::{Acceptor, EdgeLimits};
use crate::config::ServerConfig;

/// The length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const H2_PREFACE_LEN: usize = 24;

/// The edge settings of the OTLP/gRPC listener.
#[derive(Clone, Debug)]
pub(crate) struct GrpcEdge {
    pub(crate) limits: EdgeLimits,
    /// How often the server pings a connection.
    pub(crate) keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub(crate) keepalive_timeout: Duration,
    /// The most calls in progress on one connection.
    pub(crate) max_concurrent_streams: u32,
    /// The token calls must carry, if any.
    pub(crate) token: Option<IngestToken>,
}

impl GrpcEdge {
    pub(crate) fn from_config(config: &ServerConfig) -> Self {
        Self {
            limits: EdgeLimits::from_config(config),
            keepalive_interval: Duration::from_secs(config.http2_keepalive_interval_secs.max(1)),
            keepalive_timeout: Duration::from_secs(config.http2_keepalive_timeout_secs.max(1)),
            max_concurrent_streams: config.grpc_max_concurrent_streams.max(1),
            token: config.ingest_token.clone(),
        }
    }

    /// The interceptor that checks the ingest token.
    pub(crate) fn auth(&self) -> GrpcAuth {
        GrpcAuth(self.token.clone())
    }

    /// The listener's connections, within the connection limit; a connection that has not
    /// sent the HTTP/2 preface within the header read timeout is closed.
    pub(crate) fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = std::io::Result<EdgeIo>> + Send + 'static {
        let limits = self.limits;
        futures_util::stream::unfold(
            Acceptor::new(listener, limits.max_connections),
            move |mut acceptor| async move {
                let next = acceptor.accept().await.map(|(stream, _peer, slot)| {
                    EdgeIo::new(stream, slot)
                        .with_preface_deadline(H2_PREFACE_LEN, limits.header_read_timeout)
                });
                Some((next, acceptor))
            },
        )
    }
}
