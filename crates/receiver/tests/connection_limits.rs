//! The network edge under abusive clients: connection limits and the header, body and idle
//! timeouts, against a real receiver with small configured limits.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use support::receiver::TestReceiver;
use support::{ids, request, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any deadline these tests configure to pass several times over; a wait
/// that runs out means the server never acted.
const PATIENCE: Duration = Duration::from_secs(30);

fn spans() -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut span = support::generation_span(ids(), &support::Generation::default());
    span.attributes.push(text("test.case", "edge"));
    request(vec![span])
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; `false` if it is still open after `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Reads one HTTP/1.1 response head and returns its status line; `None` if none arrives
/// within `within`.
async fn status_line(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(within, async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .ok()?;
    let head = String::from_utf8_lossy(&head);
    head.lines()
        .next()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
}

async fn http_export(receiver: &TestReceiver) -> u16 {
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(spans().encode_to_vec())
        .timeout(PATIENCE)
        .send()
        .await
        .expect("OTLP/HTTP export");
    response.status().as_u16()
}

async fn grpc_export(receiver: &TestReceiver) -> Result<(), tonic::Status> {
    let export = async {
        let mut client = TraceServiceClient::connect(receiver.grpc_url())
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        client.export(spans()).await.map(|_| ())
    };
    tokio::time::timeout(PATIENCE, export)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer")))
}

#[tokio::test]
async fn silent_sockets_beyond_the_limit_are_closed_and_ingest_resumes() {
    let receiver = TestReceiver::start(|config| {
        config.server.max_connections = 4;
        config.server.header_read_timeout_secs = 1;
    })
    .await;

    // Twice the limit on each port: silent sockets, and sockets that start a request (an
    // HTTP/1.1 head, an HTTP/2 preface) and never finish it.
    let mut sockets = Vec::new();
    for i in 0..8 {
        let mut http = connect(receiver.http_addr).await;
        let mut grpc = connect(receiver.grpc_addr).await;
        if i % 2 == 1 {
            http.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            grpc.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        sockets.push(http);
        sockets.push(grpc);
    }
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert!(
            closed_by_server(socket, PATIENCE).await,
            "socket {i} is still open"
        );
    }

    assert_eq!(http_export(&receiver).await, 200);
    grpc_export(&receiver).await.expect("OTLP/gRPC export");
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let receiver = TestReceiver::start(|config| {
        config.server.idle_timeout_secs = 1;
        // Far longer than the wait below: only the idle timeout can close the connection.
        config.server.header_read_timeout_secs = 3600;
    })
    .await;
    let mut stream = connect(receiver.http_addr).await;
    for _ in 0..2 {
        // Keep-alive works: a second request on the same connection is served.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let status = status_line(&mut stream, PATIENCE).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
        // Drain the small JSON body so the next read sees the next response.
        let mut body = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut body)).await;
    }
    assert!(
        closed_by_server(&mut stream, PATIENCE).await,
        "idle connection still open"
    );
    assert_eq!(http_export(&receiver).await, 200);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_body_is_cut_off_after_the_body_timeout() {
    let receiver = TestReceiver::start(|config| {
        config.server.body_read_timeout_secs = 1;
    })
    .await;
    let mut stream = connect(receiver.http_addr).await;
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Content-Length: 100000\r\n\r\n",
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // A byte every 100 ms: the body keeps arriving, far too slowly to ever finish.
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut response = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut response)).await;
    trickle.abort();
    assert!(read.is_ok(), "the slow body was not cut off");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 400"),
        "unexpected response: {response}"
    );
    assert!(response.contains("did not arrive within 1 s"), "{response}");
    assert_eq!(http_export(&receiver).await, 200);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_grpc_message_is_cut_off_after_the_body_timeout() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let receiver = TestReceiver::start(|config| {
        config.server.body_read_timeout_secs = 1;
    })
    .await;
    let stream = connect(receiver.grpc_addr).await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    // A gRPC message announcing 100,000 bytes, then a byte every 100 ms.
    let trickle = Box::pin(futures_util::stream::unfold(true, |first| async move {
        let chunk = if first {
            Bytes::from_static(&[0, 0x00, 0x01, 0x86, 0xa0])
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Bytes::from_static(b"\x0a")
        };
        Some((Ok::<_, std::convert::Infallible>(Frame::data(chunk)), false))
    }));
    let request = http::Request::post(format!(
        "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        receiver.grpc_url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(StreamBody::new(trickle))
    .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("the slow gRPC message was not cut off")
        .expect("a response");
    let status = match response.headers().get("grpc-status") {
        Some(status) => status.clone(),
        None => {
            let body = response.into_body().collect().await.expect("response body");
            body.trailers().expect("trailers")["grpc-status"].clone()
        }
    };
    assert_eq!(status, (tonic::Code::Cancelled as i32).to_string().as_str());
    grpc_export(&receiver).await.expect("OTLP/gRPC export");
    receiver.stop().await.unwrap();
}

/// Log lines written while it lives; the test runtime is single-threaded, so the server's
/// tasks log through the test thread's default subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test]
async fn the_connection_limit_holds_extra_connections_until_a_slot_frees() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let receiver = TestReceiver::start(|config| {
        config.server.max_connections = 2;
        // Nothing frees a slot by itself during the test.
        config.server.header_read_timeout_secs = 3600;
    })
    .await;

    // HTTP: two silent connections fill the listener; a third is held, not served.
    let http_idle = [
        connect(receiver.http_addr).await,
        connect(receiver.http_addr).await,
    ];
    let mut waiting = connect(receiver.http_addr).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_line(&mut waiting, Duration::from_millis(500)).await,
        None,
        "a connection beyond the limit was served"
    );
    let [first, _second] = http_idle;
    drop(first);
    assert_eq!(
        status_line(&mut waiting, PATIENCE).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );

    // gRPC: the same.
    let grpc_idle = [
        connect(receiver.grpc_addr).await,
        connect(receiver.grpc_addr).await,
    ];
    let grpc_url = receiver.grpc_url();
    let mut export = tokio::spawn(async move {
        let mut client = TraceServiceClient::connect(grpc_url).await?;
        client.export(spans()).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut export)
            .await
            .is_err(),
        "a gRPC connection beyond the limit was served"
    );
    let [first, _second] = grpc_idle;
    drop(first);
    tokio::time::timeout(PATIENCE, export)
        .await
        .expect("the held gRPC export finishes once a slot frees")
        .unwrap()
        .expect("OTLP/gRPC export");

    // One line per listener: later waits within the log interval are counted, not logged.
    assert_eq!(logs.count("Connection limit reached"), 2);
    receiver.stop().await.unwrap();
}
