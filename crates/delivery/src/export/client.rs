//! The OTLP clients: gRPC (tonic) and HTTP/protobuf (reqwest).

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::config::Resolved;
use super::ExportConfigError;
use crate::export::ExportProtocol;

/// How an export attempt failed.
#[derive(Debug)]
pub(crate) struct SendError {
    /// Whether the same data may be sent again (OTLP retryable codes).
    pub(crate) retryable: bool,
    /// The server's `Retry-After` / `RetryInfo`.
    pub(crate) retry_after: Option<Duration>,
    /// Whether the request ran out of time (`export.timeout_millis`, or gRPC
    /// DEADLINE_EXCEEDED): the backend may have taken the data all the same.
    pub(crate) timed_out: bool,
    pub(crate) message: String,
}

impl SendError {
    pub(crate) fn retryable(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            retryable: true,
            retry_after,
            timed_out: false,
            message: message.into(),
        }
    }

    pub(crate) fn transport(error: &reqwest::Error) -> Self {
        Self {
            timed_out: error.is_timeout(),
            ..Self::retryable(error.to_string(), None)
        }
    }
}

/// What an accepted request said.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// Spans the backend rejected in an OTLP partial success (not retried, per the spec).
    pub(crate) rejected_spans: i64,
    pub(crate) error_message: String,
}

impl From<ExportTraceServiceResponse> for Accepted {
    fn from(response: ExportTraceServiceResponse) -> Self {
        response
            .partial_success
            .map(|partial| Accepted {
                rejected_spans: partial.rejected_spans,
                error_message: partial.error_message,
            })
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) enum Client {
    Grpc {
        client: TraceServiceClient<Channel>,
        metadata: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        timeout: Duration,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, closedloop_engine::secret::Secret)>,
        gzip: bool,
    },
}

impl Client {
    pub(crate) fn new(target: &Resolved) -> Result<Client, ExportConfigError> {
        match target.protocol {
            ExportProtocol::Grpc => {
                let channel = Channel::from_shared(target.endpoint.clone())
                    .map_err(|_| ExportConfigError::Endpoint(target.endpoint.clone()))?
                    .connect_timeout(target.timeout)
                    .timeout(target.timeout)
                    .connect_lazy();
                let mut client = TraceServiceClient::new(channel);
                if target.gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                client = client.accept_compressed(CompressionEncoding::Gzip);
                let metadata = target
                    .headers
                    .iter()
                    .filter_map(|(key, value)| {
                        Some((
                            MetadataKey::from_bytes(key.as_bytes()).ok()?,
                            MetadataValue::try_from(value.expose()).ok()?,
                        ))
                    })
                    .collect();
                Ok(Client::Grpc {
                    client,
                    metadata,
                    timeout: target.timeout,
                })
            }
            ExportProtocol::HttpProtobuf => {
                let client = reqwest::Client::builder()
                    .timeout(target.timeout)
                    .connect_timeout(target.timeout)
                    .build()
                    .map_err(|_| ExportConfigError::Endpoint(target.endpoint.clone()))?;
                Ok(Client::Http {
                    client,
                    url: target.endpoint.clone(),
                    headers: target.headers.clone(),
                    gzip: target.gzip,
                })
            }
        }
    }

    /// Sends one request; `Ok` only for a 2xx / gRPC OK.
    pub(crate) async fn send(
        &mut self,
        request: ExportTraceServiceRequest,
    ) -> Result<Accepted, SendError> {
        match self {
            Client::Grpc {
                client,
                metadata,
                timeout,
            } => {
                let mut request = tonic::Request::new(request);
                request.set_timeout(*timeout);
                for (key, value) in metadata.iter() {
                    request.metadata_mut().insert(key.clone(), value.clone());
                }
                match client.export(request).await {
                    Ok(response) => Ok(response.into_inner().into()),
                    Err(status) => Err(grpc_error(&status)),
                }
            }
            Client::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let mut body = request.encode_to_vec();
                let mut builder = client
                    .post(url.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                if *gzip {
                    let mut encoder =
                        GzEncoder::new(Vec::with_capacity(body.len() / 2), Compression::fast());
                    body = encoder
                        .write_all(&body)
                        .and_then(|()| encoder.finish())
                        .map_err(|error| SendError::retryable(error.to_string(), None))?;
                    builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
                }
                for (key, value) in headers.iter() {
                    builder = builder.header(key.as_str(), value.expose());
                }
                let response = builder
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| SendError::transport(&error))?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let bytes = match response.bytes().await {
                    Ok(bytes) => bytes,
                    // The body never came in time: the outcome is unknown, as for a timeout.
                    Err(error) if status.is_success() => return Err(SendError::transport(&error)),
                    Err(_) => Default::default(),
                };
                if status.is_success() {
                    return Ok(ExportTraceServiceResponse::decode(bytes)
                        .map(Accepted::from)
                        .unwrap_or_default());
                }
                // 429/502/503/504 are the OTLP retryable statuses; other failures that are not
                // about the data (auth, routing) are kept and retried as well.
                Err(SendError {
                    retryable: !is_bad_data_http(status.as_u16()),
                    retry_after,
                    timed_out: false,
                    message: format!("http status {status}"),
                })
            }
        }
    }
}

/// HTTP statuses that say the data itself cannot be accepted: sending it again is useless.
fn is_bad_data_http(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

fn grpc_error(status: &tonic::Status) -> SendError {
    use tonic::Code;
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    // OTLP: RESOURCE_EXHAUSTED is retryable only with RetryInfo. INVALID_ARGUMENT and the
    // like say the data is bad. Other codes (auth, unimplemented, unknown) are configuration
    // problems an operator can fix, so the data is kept and retried.
    let retryable = match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => false,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => true,
    };
    // tonic reports its own request timeout as CANCELLED ("Timeout expired"); the server's
    // deadline as DEADLINE_EXCEEDED.
    let timed_out = matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled);
    SendError {
        retryable,
        retry_after,
        timed_out,
        message: format!("grpc status {:?}: {}", status.code(), status.message()),
    }
}
