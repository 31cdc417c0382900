//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use closedloop_semconv::attribute::ReceiverProtocol;
use http::HeaderValue;
use hyper::body::{Body, Frame, SizeHint};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{NamedService, UnaryService};
use tonic_types::{ErrorDetails, StatusExt};

use super::{decode_protobuf, export_response, Admission, Ingest, OtlpError};

/// The gRPC path of `TraceService/Export`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The OTLP/gRPC trace service.
#[derive(Clone, Debug)]
pub(crate) struct GrpcServer {
    ingest: Ingest,
    max_message_bytes: usize,
}

impl GrpcServer {
    /// `max_message_bytes` bounds a message after decompression.
    pub(crate) fn new(ingest: Ingest, max_message_bytes: usize) -> Self {
        Self {
            ingest,
            max_message_bytes,
        }
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits for the requests and
    /// connections in progress to finish. `edge` holds the connection limit, timeouts,
    /// keepalive and ingest token.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        edge: crate::edge::grpc::GrpcEdge,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let service = TraceService {
            ingest: self.ingest,
            max_message_bytes: self.max_message_bytes,
        };
        tonic::transport::Server::builder()
            .timeout(edge.limits.body_read_timeout)
            .http2_keepalive_interval(Some(edge.keepalive_interval))
            .http2_keepalive_timeout(Some(edge.keepalive_timeout))
            .max_concurrent_streams(edge.max_concurrent_streams)
            .layer(tower::util::MapResponseLayer::new(decode_errors_as_otlp))
            .layer(tonic::service::InterceptorLayer::new(edge.auth()))
            .add_service(service)
            .serve_with_incoming_shutdown(edge.incoming(listener), shutdown)
            .await
    }
}

/// `TraceService`, served by hand rather than through the generated server: the generated one
/// decodes the message before the handler runs, where neither the in-flight limit nor the
/// decode budget can see it.
///
/// Here a request is admitted before tonic reads its body, the body's frames are charged to
/// its reservation as they arrive, and the message reaches [`Export`] as bytes (decompressed
/// and bounded by `max_message_bytes` by tonic), to be scanned, charged and decoded like an
/// OTLP/HTTP body.
#[derive(Clone, Debug)]
struct TraceService {
    ingest: Ingest,
    max_message_bytes: usize,
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let status = tonic::Status::unimplemented("only TraceService/Export is served");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let ingest = self.ingest.clone();
        let max_message_bytes = self.max_message_bytes;
        // A compressed message is inflated into a second buffer beside the received one.
        let compressed = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|encoding| encoding.as_bytes() != b"identity");
        Box::pin(async move {
            let admission = match ingest.admit() {
                Ok(admission) => Arc::new(admission),
                Err(error) => {
                    tracing::debug!(%error, "OTLP/gRPC request refused.");
                    return Ok(grpc_status(&error).into_http());
                }
            };
            let request = request.map(|body| ChargedBody {
                body,
                admission: Arc::clone(&admission),
                received: 0,
                max_bytes: max_message_bytes.saturating_add(GRPC_FRAME_HEADER_BYTES),
            });
            let mut grpc = tonic::server::Grpc::new(MessageCodec {
                admission: Arc::clone(&admission),
                compressed,
            })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes);
            Ok(grpc.unary(Export { ingest, admission }, request).await)
        })
    }
}

/// The length prefix of a gRPC message: a compression flag and a 32-bit length.
const GRPC_FRAME_HEADER_BYTES: usize = 5;

/// A request body whose data frames are charged to the request's reservation as they arrive.
///
/// Export is unary: a call carries one message, at most `max_grpc_message_mib` plus its length
/// prefix. A call that sends more (tonic reads and discards any further messages of a unary
/// call before answering) is refused with `RESOURCE_EXHAUSTED` once it passes that, so one
/// call cannot hold more of the decode budget than one message.
#[derive(Debug)]
struct ChargedBody {
    body: tonic::body::Body,
    admission: Arc<Admission>,
    /// Data bytes received so far.
    received: usize,
    /// The most data bytes one call may send.
    max_bytes: usize,
}

impl Body for ChargedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let Some(Ok(data)) = frame
            .as_ref()
            .map(|frame| frame.as_ref().map(Frame::data_ref))
        {
            let charged = data.map_or(Ok(()), |data| {
                this.received = this.received.saturating_add(data.len());
                if this.received > this.max_bytes {
                    return Err(OtlpError::TooLarge {
                        limit_bytes: this.max_bytes,
                    });
                }
                this.admission.reservation().charge_bytes(data.len())
            });
            if let Err(error) = charged {
                return Poll::Ready(Some(Err(grpc_status(&error))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Hands the message to [`Export`] as bytes and encodes the response. A compressed message
/// has been inflated into a second buffer, which is charged to the reservation.
#[derive(Debug)]
struct MessageCodec {
    admission: Arc<Admission>,
    compressed: bool,
}

impl Codec for MessageCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = MessageDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> MessageDecoder {
        MessageDecoder {
            admission: Arc::clone(&self.admission),
            compressed: self.compressed,
        }
    }
}

#[derive(Debug)]
struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: ExportTraceServiceResponse,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

#[derive(Debug)]
struct MessageDecoder {
    admission: Arc<Admission>,
    compressed: bool,
}

impl Decoder for MessageDecoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let len = src.remaining();
        if self.compressed {
            self.admission
                .reservation()
                .charge_bytes(len)
                .map_err(|error| grpc_status(&error))?;
        }
        Ok(Some(src.copy_to_bytes(len)))
    }
}

/// The `Export` method: scans, charges and decodes the message, then hands it to the pipeline.
struct Export {
    ingest: Ingest,
    admission: Arc<Admission>,
}

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.ingest.clone();
        let admission = Arc::clone(&self.admission);
        Box::pin(async move {
            let message = request.into_inner();
            let result = match decode_protobuf(&message, admission.reservation()) {
                Ok(request) => {
                    drop(message);
                    ingest.export(request, ReceiverProtocol::Grpc).await
                }
                Err(error) => Err(error),
            };
            drop(admission);
            match result {
                Ok(outcome) => Ok(tonic::Response::new(export_response(&outcome))),
                Err(error) => {
                    if error.grpc_code() == tonic::Code::Unavailable {
                        tracing::warn!(%error, "OTLP/gRPC request failed.");
                    } else {
                        tracing::debug!(%error, "OTLP/gRPC request refused.");
                    }
                    Err(grpc_status(&error))
                }
            }
        })
    }
}

/// Aligns the statuses tonic answers for requests it cannot decode with the OTLP specification.
///
/// - A message over `max_decoding_message_size` is refused with `OUT_OF_RANGE` when it arrives
///   uncompressed (`RESOURCE_EXHAUSTED` when compressed); OTLP asks for `RESOURCE_EXHAUSTED`.
/// - A body that is not valid protobuf, or a corrupt gzip stream, is refused with `INTERNAL`
///   (gRPC's convention for parse errors); OTLP asks for `INVALID_ARGUMENT`, which tells the
///   client the data is bad rather than the server.
///
/// The trace service itself never answers either code, so the rewrite cannot hide one of its
/// errors. Decode errors are trailers-only responses, whose status travels in the headers.
fn decode_errors_as_otlp<B>(mut response: http::Response<B>) -> http::Response<B> {
    const GRPC_STATUS: &str = "grpc-status";
    let rewrite = match response
        .headers()
        .get(GRPC_STATUS)
        .map(HeaderValue::as_bytes)
    {
        Some(b"11") => tonic::Code::ResourceExhausted,
        Some(b"13") => tonic::Code::InvalidArgument,
        _ => return response,
    };
    response
        .headers_mut()
        .insert(GRPC_STATUS, HeaderValue::from(rewrite as i32));
    response
}

/// The gRPC status for an error; retryable errors carry a `google.rpc.RetryInfo` detail, which
/// OpenTelemetry SDK exporters honour.
fn grpc_status(error: &OtlpError) -> tonic::Status {
    match error.retry_after() {
        Some(delay) => tonic::Status::with_error_details(
            error.grpc_code(),
            error.to_string(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => tonic::Status::new(error.grpc_code(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_get_otlp_codes() {
        let code = |status: tonic::Status| {
            let response = decode_errors_as_otlp(status.into_http::<()>());
            response.headers()["grpc-status"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(code(tonic::Status::out_of_range("too large")), "8");
        assert_eq!(code(tonic::Status::internal("bad protobuf")), "3");
        assert_eq!(code(tonic::Status::unavailable("busy")), "14");
        let ok = decode_errors_as_otlp(http::Response::new(()));
        assert!(ok.headers().get("grpc-status").is_none());
    }

    #[test]
    fn retryable_status_carries_retry_info() {
        let status = grpc_status(&OtlpError::Busy {
            retry_after: std::time::Duration::from_secs(2),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let details = status.get_error_details();
        let retry = details.retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(2)));
    }
}
