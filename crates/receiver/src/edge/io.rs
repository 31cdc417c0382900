//! [`EdgeIo`]: an accepted socket that holds its connection slot and reports what it reads.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::http::Activity;
use super::Slot;

/// An accepted TCP connection. Dropping it closes the socket and frees its slot.
#[derive(Debug)]
pub(crate) struct EdgeIo {
    stream: TcpStream,
    _slot: Slot,
    activity: Option<Arc<Activity>>,
    preface: Option<Preface>,
}

/// A deadline for the first bytes of a connection.
#[derive(Debug)]
struct Preface {
    remaining: usize,
    deadline: Pin<Box<Sleep>>,
}

impl EdgeIo {
    pub(crate) fn new(stream: TcpStream, slot: Slot) -> Self {
        Self {
            stream,
            _slot: slot,
            activity: None,
            preface: None,
        }
    }

    /// Reports every read to `activity` (the HTTP connection's deadlines).
    pub(crate) fn with_activity(mut self, activity: Arc<Activity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Fails reads once `timeout` has passed before the peer sent `bytes` bytes.
    pub(crate) fn with_preface_deadline(mut self, bytes: usize, timeout: Duration) -> Self {
        self.preface = Some(Preface {
            remaining: bytes,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        });
        self
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            if let Some(activity) = &this.activity {
                activity.on_read();
            }
            if let Some(preface) = &mut this.preface {
                preface.remaining = preface.remaining.saturating_sub(read);
                if preface.remaining == 0 {
                    this.preface = None;
                }
            }
        }
        if poll.is_pending() {
            if let Some(preface) = &mut this.preface {
                if preface.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection preface did not arrive within the header read timeout",
                    )));
                }
            }
        }
        poll
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for EdgeIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
