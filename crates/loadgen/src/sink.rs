//! A tiny OTLP/gRPC trace sink that notes when spans of watched traces arrive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;

/// Shared state of the sink.
#[derive(Debug, Default)]
pub struct Sink {
    watched: Mutex<HashMap<Vec<u8>, oneshot::Sender<Instant>>>,
    spans: AtomicU64,
}

impl Sink {
    /// Resolves with the arrival time of the first span of `trace_id` received from now on.
    pub fn watch(&self, trace_id: &[u8]) -> oneshot::Receiver<Instant> {
        let (sender, receiver) = oneshot::channel();
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trace_id.to_vec(), sender);
        receiver
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Service(Arc<Sink>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let arrived = Instant::now();
        let request = request.into_inner();
        let mut watched = self
            .0
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for span in request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
        {
            self.0.spans.fetch_add(1, Ordering::Relaxed);
            if let Some(sender) = watched.remove(&span.trace_id) {
                let _ = sender.send(arrived);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves the sink on `listener` until the task is dropped or aborted.
pub fn serve(listener: TcpListener) -> (Arc<Sink>, tokio::task::JoinHandle<()>) {
    let sink = Arc::new(Sink::default());
    let service = TraceServiceServer::new(Service(Arc::clone(&sink)))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await;
    });
    (sink, task)
}
