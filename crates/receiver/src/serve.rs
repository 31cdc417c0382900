//! The running receiver: the pipeline, the OTLP/gRPC listener, the HTTP listener (OTLP/HTTP,
//! the feedback API, `/healthz`), the optional separate feedback listener, self-metrics, and
//! graceful shutdown.
//!
//! Binding happens outside [`Receiver::serve`], so callers (and tests, with `127.0.0.1:0`) own
//! the sockets and know the bound addresses before serving starts.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use closedloop_console::Console;

use crate::config::{Config, ConfigError, ServerConfig};
use crate::edge::grpc::GrpcEdge;
use crate::edge::{auth, http as edge_http, EdgeLimits};
use crate::feedback_api::{self, FeedbackConfigError};
use crate::otlp::grpc::GrpcServer;
use crate::otlp::{http as otlp_http, Ingest};
use crate::pipeline::{Pipeline, PipelineError};
use crate::telemetry::{Telemetry, TelemetryError};

/// The health check path.
pub(crate) const HEALTH_PATH: &str = "/healthz";

/// Why the receiver could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("failed to bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline could not start or flush.
    #[error("pipeline failed")]
    Pipeline(#[from] PipelineError),
    /// The feedback API configuration is invalid.
    #[error("invalid feedback configuration")]
    Feedback(#[from] FeedbackConfigError),
    /// Self-metrics could not be set up or flushed.
    #[error("telemetry failed")]
    Telemetry(#[from] TelemetryError),
    /// The gRPC server failed.
    #[error("otlp/grpc server failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("http server failed")]
    Http(#[source] std::io::Error),
    /// A server task panicked or was cancelled.
    #[error("server task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The configuration does not pass [`Config::validate`].
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// `server.feedback_addr` is set but [`Listeners::feedback`] is `None`, so the feedback
    /// API would have been served on the OTLP/HTTP port.
    #[error("server.feedback_addr is set but no feedback listener was given")]
    MissingFeedbackListener,
    /// `ui.listen_addr` is set but [`Listeners::ui`] is `None`.
    #[error("ui.listen_addr is set but no console listener was given")]
    MissingUiListener,
    /// The console cannot be served: its `[ui]` section is invalid, or the listener it
    /// would be served on is beyond loopback without authentication.
    #[error("console cannot be served")]
    Console(#[from] closedloop_console::UiConfigError),
    /// The export settings the console's state changes need are invalid.
    #[error("invalid export configuration")]
    Export(#[from] crate::ExportConfigError),
}

/// The sockets the receiver serves on.
#[derive(Debug)]
pub struct Listeners {
    /// OTLP/gRPC.
    pub grpc: TcpListener,
    /// OTLP/HTTP and `/healthz`, and the feedback API unless `feedback` is set.
    pub http: TcpListener,
    /// The feedback API and `/healthz` only (`server.feedback_addr`).
    pub feedback: Option<TcpListener>,
    /// The console only (`ui.listen_addr`); without it the console is served under `/ui/` of
    /// `http`.
    pub ui: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of the `[server]` section, and `ui.listen_addr` when the console
    /// has a listener of its own.
    pub async fn bind(config: &Config) -> Result<Self, ServeError> {
        let mut listeners = Self::bind_server(&config.server).await?;
        if let Some(addr) = config.ui.listen_addr.filter(|_| config.ui.enabled) {
            listeners.ui = Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?,
            );
        }
        Ok(listeners)
    }

    /// Binds the addresses of the `[server]` section only.
    pub async fn bind_server(config: &ServerConfig) -> Result<Self, ServeError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        Ok(Self {
            grpc: bind(config.grpc_addr).await?,
            http: bind(config.http_addr).await?,
            feedback: match config.feedback_addr {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            },
            ui: None,
        })
    }
}

/// The closedloop receiver.
///
/// ```no_run
/// use closedloop_receiver::{Config, Listeners, Receiver};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::default();
/// let listeners = Listeners::bind(&config).await?;
/// let shutdown = async {
///     let _ = tokio::signal::ctrl_c().await;
/// };
/// Receiver::builder(config).build().serve(listeners, shutdown).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Receiver {
    config: Config,
    pipeline: Option<Pipeline>,
}

/// Builds a [`Receiver`].
#[derive(Debug)]
pub struct ReceiverBuilder {
    config: Config,
    pipeline: Option<Pipeline>,
}

impl ReceiverBuilder {
    /// Serves an already started pipeline instead of starting one from the configuration's
    /// `[store]`, `[join]` and `[export]` sections. The receiver still shuts it down.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// The receiver.
    pub fn build(self) -> Receiver {
        Receiver {
            config: self.config,
            pipeline: self.pipeline,
        }
    }
}

impl Receiver {
    /// A builder for a receiver with this configuration.
    pub fn builder(config: Config) -> ReceiverBuilder {
        ReceiverBuilder {
            config,
            pipeline: None,
        }
    }

    /// Serves until `shutdown` resolves or a server fails.
    ///
    /// On shutdown both listeners stop accepting at once, requests in progress get
    /// `server.shutdown_grace_secs` to finish, and then the pipeline is shut down, which
    /// flushes pending writes and makes a last export attempt.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.config.validate()?;
        let server = &self.config.server;
        let pipeline = match self.pipeline {
            Some(pipeline) => pipeline,
            None => Pipeline::start(self.config.pipeline()).await?,
        };
        let telemetry = match Telemetry::start(&self.config.telemetry, &pipeline) {
            Ok(telemetry) => telemetry,
            Err(error) => {
                shutdown_pipeline(&pipeline).await;
                return Err(error.into());
            }
        };
        let ingest = Ingest::new(
            pipeline.clone(),
            server.max_in_flight_requests,
            server.decode_limits(),
            telemetry.metrics(),
        );
        let feedback = match feedback_api::routes(pipeline.clone(), self.config.feedback.clone()) {
            Ok(routes) => routes,
            Err(error) => {
                shutdown_pipeline(&pipeline).await;
                return Err(error.into());
            }
        };
        if self.config.feedback.token_secret.is_none() {
            tracing::warn!("No feedback token secret configured; POST /v1/feedback is off.");
        }
        let traces = auth::protect(
            otlp_http::routes(
                ingest.clone(),
                server.max_http_body_mib.saturating_mul(1024 * 1024),
            ),
            server.ingest_token.as_ref(),
            &[&listeners.grpc, &listeners.http],
        );
        if server.feedback_addr.is_some() && listeners.feedback.is_none() {
            shutdown_pipeline(&pipeline).await;
            return Err(ServeError::MissingFeedbackListener);
        }
        let console = match Self::console(&self.config, &listeners) {
            Ok(console) => console,
            Err(error) => {
                shutdown_pipeline(&pipeline).await;
                return Err(error);
            }
        };
        let mut router = Router::new()
            .merge(traces)
            .merge(health_routes(pipeline.clone()));
        // Without a listener of its own, the console is served under /ui/ of the HTTP port.
        let console = match (console, listeners.ui) {
            (Some(console), Some(listener)) => Some((listener, console)),
            (Some(console), None) => {
                router = router.merge(console);
                None
            }
            (None, _) => None,
        };
        // With a feedback listener, the OTLP/HTTP port does not serve the browser API.
        let feedback = match listeners.feedback {
            Some(listener) => Some((listener, feedback.merge(health_routes(pipeline.clone())))),
            None => {
                router = router.merge(feedback);
                None
            }
        };

        if let (Ok(grpc_addr), Ok(http_addr)) =
            (listeners.grpc.local_addr(), listeners.http.local_addr())
        {
            let feedback_addr = feedback
                .as_ref()
                .and_then(|(listener, _)| listener.local_addr().ok());
            tracing::info!(%grpc_addr, %http_addr, ?feedback_addr, "Receiver listening.");
        }
        let limits = EdgeLimits::from_config(server);
        let (stop, stopped) = watch::channel(false);
        let console_stopped = stopped.clone();
        let mut grpc = tokio::spawn(
            GrpcServer::new(
                ingest,
                server.max_grpc_message_mib.saturating_mul(1024 * 1024),
            )
            .serve(
                listeners.grpc,
                GrpcEdge::from_config(server),
                wait_for_stop(stopped.clone()),
            ),
        );
        let http_server = edge_http::serve(
            listeners.http,
            router,
            limits,
            wait_for_stop(stopped.clone()),
        );
        let feedback_server = async move {
            match feedback {
                Some((listener, routes)) => {
                    edge_http::serve(listener, routes, limits, wait_for_stop(stopped)).await
                }
                None => Ok(()),
            }
        };
        let console_server = async move {
            match console {
                Some((listener, routes)) => {
                    edge_http::serve(listener, routes, limits, wait_for_stop(console_stopped)).await
                }
                None => Ok(()),
            }
        };
        let mut http = tokio::spawn(async move {
            tokio::try_join!(http_server, feedback_server, console_server).map(|_| ())
        });

        // Run until asked to stop, or until a server ends on its own (which is an error).
        let (mut grpc_finished, mut http_finished) = (false, false);
        let mut early = Ok(());
        tokio::select! {
            () = shutdown => tracing::info!("Shutting down: draining requests in progress."),
            result = &mut grpc => {
                grpc_finished = true;
                early = grpc_result(result);
            }
            result = &mut http => {
                http_finished = true;
                early = http_result(result);
            }
        }
        let _ = stop.send(true);

        let grace = Duration::from_secs(server.shutdown_grace_secs);
        let drained = tokio::time::timeout(grace, async {
            let grpc_done = if grpc_finished {
                Ok(())
            } else {
                grpc_result((&mut grpc).await)
            };
            let http_done = if http_finished {
                Ok(())
            } else {
                http_result((&mut http).await)
            };
            grpc_done.and(http_done)
        })
        .await;
        let drained = match drained {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "Requests still running after the grace period; closing them."
                );
                grpc.abort();
                http.abort();
                Ok(())
            }
        };

        let flushed = pipeline.shutdown().await;
        // The last metrics export blocks this thread while the exporter's connection lives on
        // the runtime, so it runs on a blocking thread.
        let metrics_flushed = tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .map_err(ServeError::Task)?;
        tracing::info!("Receiver stopped.");
        early.and(drained)?;
        flushed?;
        metrics_flushed?;
        Ok(())
    }
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

fn grpc_result(
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    result.map_err(ServeError::Task)?.map_err(ServeError::Grpc)
}

fn http_result(
    result: Result<Result<(), std::io::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    result.map_err(ServeError::Task)?.map_err(ServeError::Http)
}

async fn shutdown_pipeline(pipeline: &Pipeline) {
    if let Err(error) = pipeline.shutdown().await {
        tracing::warn!(error = %error, "Pipeline shutdown failed.");
    }
}

impl Receiver {
    /// The console, when `[ui]` turns it on, checked against the address it will be served
    /// on (loopback, or authentication configured).
    ///
    /// On a listener of its own (`ui.listen_addr`) a console that may not be served there
    /// stops the receiver from starting. Under `/ui/` of the HTTP listener, which must often
    /// listen beyond loopback for OTLP, it refuses to serve instead (every page answers 403
    /// and says why), so ingest is not held hostage by the console's settings.
    fn console(config: &Config, listeners: &Listeners) -> Result<Option<Router>, ServeError> {
        if !config.ui.enabled {
            return Ok(None);
        }
        if config.ui.listen_addr.is_some() && listeners.ui.is_none() {
            return Err(ServeError::MissingUiListener);
        }
        let listener = listeners.ui.as_ref().unwrap_or(&listeners.http);
        let addr = listener.local_addr().map_err(ServeError::Http)?;
        let console = Console::new(&config.ui, config.store.clone(), config.direct_settings()?)?;
        match console.check_exposure(addr) {
            Ok(()) => {
                tracing::info!(url = %format!("http://{addr}/ui/"), "Console listening.");
                Ok(Some(console.router()))
            }
            Err(error) if listeners.ui.is_none() => {
                tracing::warn!(%addr, %error, "Console not served.");
                Ok(Some(Console::refusing(&error)))
            }
            Err(error) => Err(error.into()),
        }
    }
}

fn health_routes(pipeline: Pipeline) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .with_state(pipeline)
}

/// `GET /healthz`: 200 with the pipeline's counters while the receiver is serving.
async fn health(State(pipeline): State<Pipeline>) -> Json<serde_json::Value> {
    let stats = pipeline.stats();
    Json(serde_json::json!({
        "status": "ok",
        "spans": { "accepted": stats.spans_accepted, "rejected": stats.spans_rejected },
        "feedback": { "recorded": stats.feedback_recorded },
        "failure_records": stats.failure_records,
        "export": { "sent": stats.export_sent, "pending": stats.export_pending },
    }))
}
