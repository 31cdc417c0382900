//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::future::Future;

use closedloop_semconv::attribute::ReceiverProtocol;
use http::HeaderValue;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic_types::{ErrorDetails, StatusExt};

use super::{export_response, Ingest, OtlpError};

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
        let service = TraceServiceServer::new(TraceServiceImpl {
            ingest: self.ingest,
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(self.max_message_bytes);
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

#[derive(Debug)]
struct TraceServiceImpl {
    ingest: Ingest,
}

#[tonic::async_trait]
impl TraceService for TraceServiceImpl {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self
            .ingest
            .export(request.into_inner(), ReceiverProtocol::Grpc)
            .await
        {
            Ok(outcome) => Ok(tonic::Response::new(export_response(&outcome))),
            Err(error) => {
                tracing::warn!(%error, "OTLP/gRPC request failed.");
                Err(grpc_status(&error))
            }
        }
    }
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
