//! A real receiver on `127.0.0.1:0` with its store in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use closedloop_receiver::{Config, Listeners, Receiver, ServeError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The feedback token secret test receivers are configured with.
pub const TOKEN_SECRET: &str = "test-feedback-token-secret-of-32-bytes";

/// A receiver serving in the background; [`TestReceiver::stop`] shuts it down gracefully.
pub struct TestReceiver {
    /// The OTLP/gRPC address.
    pub grpc_addr: SocketAddr,
    /// The HTTP address.
    pub http_addr: SocketAddr,
    /// The separate feedback listener's address, when `server.feedback_addr` was set.
    pub feedback_addr: Option<SocketAddr>,
    /// The store file.
    pub store_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

impl TestReceiver {
    /// Starts a receiver with the test defaults (temporary store, token secret, fast join),
    /// after `configure` has adjusted them. When `server.feedback_addr` is set, a third
    /// listener is bound on `127.0.0.1:0` for the feedback API.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.store.path = dir.path().join("closedloop.db");
        config.feedback.token_secret = Some(TOKEN_SECRET.into());
        config.server.shutdown_grace_secs = 5;
        config.export.use_env = false;
        configure(&mut config);
        let listeners = Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.expect("bind grpc"),
            http: TcpListener::bind("127.0.0.1:0").await.expect("bind http"),
            feedback: match config.server.feedback_addr {
                Some(_) => Some(
                    TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind feedback"),
                ),
                None => None,
            },
            ui: match config.ui.listen_addr {
                Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind ui")),
                None => None,
            },
        };
        let grpc_addr = listeners.grpc.local_addr().unwrap();
        let http_addr = listeners.http.local_addr().unwrap();
        let feedback_addr = listeners
            .feedback
            .as_ref()
            .map(|listener| listener.local_addr().unwrap());
        let store_path = config.store.path.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(Receiver::builder(config).build().serve(listeners, async {
            let _ = stopped.await;
        }));
        Self {
            grpc_addr,
            http_addr,
            feedback_addr,
            store_path,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT{path}` on the HTTP listener.
    /// `POST /v1/traces` with this content type, the body gzip-compressed when `gzip_body`.
    pub async fn post_traces(
        &self,
        content_type: &str,
        gzip_body: bool,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut builder = reqwest::Client::new()
            .post(self.http_url("/v1/traces"))
            .header("content-type", content_type);
        let body = if gzip_body {
            builder = builder.header("content-encoding", "gzip");
            super::gzip(&body)
        } else {
            body
        };
        builder.body(body).send().await.expect("request sent")
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// `http://127.0.0.1:PORT` of the gRPC listener.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Sends `spans` over OTLP/HTTP (protobuf) and asserts they were all accepted (committed).
    pub async fn export_spans(&self, spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) {
        use prost::Message;
        let reply = reqwest::Client::new()
            .post(self.http_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(super::request(spans).encode_to_vec())
            .send()
            .await
            .expect("export sent");
        assert_eq!(reply.status(), 200, "OTLP export refused");
    }

    /// A read-only connection to the receiver's store.
    pub fn read_store(&self) -> closedloop_store::Connection {
        closedloop_store::Connection::inspect_sqlite_file(&self.store_path, false)
            .expect("open store")
    }

    /// Shuts the receiver down and returns how `serve` ended.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("receiver task")
    }
}
