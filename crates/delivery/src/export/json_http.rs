//! The HTTP/JSON request of the annotation sinks, with the OTLP exporter's reading of the
//! answer: which failures are retried, and the server's `Retry-After`.

use std::time::Duration;

use super::client::SendError;
use super::ExportConfigError;

/// The HTTP client of an annotation sink at `endpoint`, with its request timeout (from
/// `timeout_millis`, at least 1 ms): the endpoint is checked to be an HTTP URL.
pub(crate) fn client(
    endpoint: &str,
    timeout_millis: u64,
) -> Result<(reqwest::Client, Duration), ExportConfigError> {
    if !super::config::is_http_url(endpoint) {
        return Err(ExportConfigError::Endpoint(endpoint.to_owned()));
    }
    let timeout = Duration::from_millis(timeout_millis.max(1));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|_| ExportConfigError::Endpoint(endpoint.to_owned()))?;
    Ok((client, timeout))
}

/// Sends `request` (a JSON body already set); `Ok` for a 2xx.
///
/// 429, 5xx and the other answers that are not about the data (auth, routing) are retried;
/// 400, 413, 415 and 422 say the data cannot be taken. A 404 is retried too: Phoenix answers
/// it for a span it has not ingested yet, and elsewhere it is a routing problem.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<(), SendError> {
    let response = request
        .send()
        .await
        .map_err(|error| SendError::transport(&error))?;
    let status = response.status();
    if status.is_success() {
        // The body carries nothing the sink needs; reading it ends the request cleanly.
        let _ = response.bytes().await;
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let bad_data = matches!(status.as_u16(), 400 | 413 | 415 | 422);
    let mut detail: String = body.chars().take(200).collect();
    if !detail.is_empty() {
        detail.insert_str(0, ": ");
    }
    Err(SendError {
        retryable: !bad_data,
        retry_after,
        timed_out: false,
        message: format!("http status {status}{detail}"),
    })
}

/// Appends `path` to a base URL without doubling its slash.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
