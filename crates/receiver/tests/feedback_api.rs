//! `POST /v1/feedback` against a real receiver: tokens, idempotency, CORS, limits, errors.

mod support;

use std::time::{Duration, SystemTime};

use closedloop_receiver::{ConfigError, FeedbackConfigError, InvalidSetting, ServeError};
use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::{json, Value};
use support::receiver::{TestReceiver, TOKEN_SECRET};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn token_for(secret: &str, trace_id: &str, span_id: &str, valid_for: Duration) -> String {
    issue_feedback_token(
        secret.as_bytes(),
        TraceId::from_hex(trace_id).unwrap(),
        SpanId::from_hex(span_id).unwrap(),
        SystemTime::now() + valid_for,
    )
}

fn valid_token() -> String {
    token_for(TOKEN_SECRET, TRACE_ID, SPAN_ID, Duration::from_secs(3600))
}

fn feedback(token: &str, idempotency_id: &str) -> Value {
    json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "thumbs_down",
        "category": "hallucination",
        "feedback_token": token,
        "idempotency_id": idempotency_id,
    })
}

async fn post(receiver: &TestReceiver, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn valid_feedback_is_recorded_once() {
    let receiver = TestReceiver::start(|_| {}).await;
    let body = feedback(&valid_token(), "fb-once");

    let (status, first) = post(&receiver, &body).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["duplicate"], false);
    let feedback_id = first["feedback_id"]
        .as_str()
        .expect("feedback id")
        .to_owned();

    let (status, again) = post(&receiver, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["feedback_id"], feedback_id.as_str());
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn bad_tokens_are_refused_and_the_server_keeps_serving() {
    let receiver = TestReceiver::start(|_| {}).await;
    let hour = Duration::from_secs(3600);
    let cases = [
        // Forged: signed with a guessed secret.
        (
            token_for("guessed", TRACE_ID, SPAN_ID, hour),
            401,
            "invalid_token",
        ),
        // Garbage.
        ("not-a-token".to_owned(), 401, "invalid_token"),
        // Minted for another span of the same trace.
        (
            token_for(TOKEN_SECRET, TRACE_ID, "1111111111111111", hour),
            403,
            "token_mismatch",
        ),
    ];
    for (token, want_status, want_code) in cases {
        let (status, body) = post(&receiver, &feedback(&token, "fb-bad")).await;
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // Expired.
    let expired = issue_feedback_token(
        TOKEN_SECRET.as_bytes(),
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex(SPAN_ID).unwrap(),
        SystemTime::now() - Duration::from_secs(1),
    );
    let (status, body) = post(&receiver, &feedback(&expired, "fb-bad")).await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = post(&receiver, &feedback(&valid_token(), "fb-good")).await;
    assert_eq!(status, 201, "{body}");
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_oversized_and_wrong_type_requests() {
    let receiver = TestReceiver::start(|config| config.feedback.max_body_kib = 1).await;
    let client = reqwest::Client::new();
    let url = receiver.http_url("/v1/feedback");

    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"signal\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed");

    let mut unknown_signal = feedback(&valid_token(), "fb-x");
    unknown_signal["signal"] = json!("meh");
    let (status, body) = post(&receiver, &unknown_signal).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_field");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("thumbs_down"));

    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ] {
        let mut request = client
            .post(&url)
            .body(feedback(&valid_token(), "fb-x").to_string());
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_content_type");
    }

    let mut big = feedback(&valid_token(), "fb-x");
    big["comment"] = json!("x".repeat(2048));
    let (status, body) = post(&receiver, &big).await;
    assert_eq!(status, 413, "{body}");

    let (status, body) = post(&receiver, &feedback(&valid_token(), "fb-after")).await;
    assert_eq!(status, 201, "{body}");
    receiver.stop().await.unwrap();
}

/// `navigator.sendBeacon(url, string)` posts the string as `text/plain;charset=UTF-8`.
#[tokio::test]
async fn a_text_plain_json_body_is_recorded() {
    let receiver = TestReceiver::start(|_| {}).await;
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(feedback(&valid_token(), "fb-beacon").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["duplicate"], false);

    let malformed = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .header("content-type", "text/plain")
        .body("thumbs down")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_secret_the_endpoint_is_off() {
    let receiver = TestReceiver::start(|config| config.feedback.token_secret = None).await;
    let (status, body) = post(&receiver, &feedback(&valid_token(), "fb-off")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "disabled");
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn cors_preflight_is_allowed_only_for_listed_origins() {
    let receiver = TestReceiver::start(|config| {
        config.feedback.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, receiver.http_url("/v1/feedback"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };

    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");

    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(denied
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // The actual request from an allowed origin carries the header too.
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .header("origin", "https://app.example.com")
        .json(&feedback(&valid_token(), "fb-cors"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    // A beacon: a simple request (text/plain, no preflight) from an allowed origin.
    let beacon = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .header("origin", "https://app.example.com")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(feedback(&valid_token(), "fb-cors-beacon").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(beacon.status(), 201);
    assert_eq!(
        beacon.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn nothing_is_allowed_cross_origin_by_default() {
    let receiver = TestReceiver::start(|_| {}).await;
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, receiver.http_url("/v1/feedback"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn each_client_is_rate_limited() {
    let receiver = TestReceiver::start(|config| {
        config.feedback.rate_limit_per_min = 1;
        config.feedback.rate_limit_burst = 2;
    })
    .await;
    for i in 0..2 {
        let (status, body) =
            post(&receiver, &feedback(&valid_token(), &format!("fb-rl-{i}"))).await;
        assert_eq!(status, 201, "{body}");
    }
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .json(&feedback(&valid_token(), "fb-rl-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // OTLP ingest on the same port is not affected.
    let response = reqwest::get(receiver.http_url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    receiver.stop().await.unwrap();
}

fn token_for_ids(ids: support::Ids) -> String {
    token_for(
        TOKEN_SECRET,
        &hex::encode(ids.0),
        &hex::encode(ids.1),
        Duration::from_secs(3600),
    )
}

/// Negative feedback on the answer `ids`, with its token.
fn feedback_on(ids: support::Ids, idempotency_id: &str) -> Value {
    json!({
        "response": { "trace_id": hex::encode(ids.0), "span_id": hex::encode(ids.1) },
        "signal": "report",
        "category": "harmful",
        "feedback_token": token_for_ids(ids),
        "idempotency_id": idempotency_id,
    })
}

fn generation(response_id: &'static str) -> support::Generation {
    support::Generation {
        response_id: Some(response_id),
        ..Default::default()
    }
}

fn count(mut conn: closedloop_store::Connection, sql: &str, ids: support::Ids) -> i64 {
    use closedloop_store::inspect::Param;
    conn.inspect_int(sql, &[Param::Blob(&ids.0), Param::Blob(&ids.1)])
        .unwrap()
}

fn failures_on(receiver: &TestReceiver, ids: support::Ids) -> i64 {
    count(
        receiver.read_store(),
        "SELECT count(*) FROM failures WHERE trace_id = ?1 AND span_id = ?2",
        ids,
    )
}

fn feedback_targeting(receiver: &TestReceiver, ids: support::Ids) -> i64 {
    count(
        receiver.read_store(),
        "SELECT count(*) FROM feedback WHERE target_trace_id = ?1 AND target_span_id = ?2",
        ids,
    )
}

/// A valid token for answer A with answer B's `response_id` must not file feedback on B,
/// whether B's response is already indexed or arrives while the feedback waits.
#[tokio::test]
async fn a_token_for_one_answer_cannot_file_feedback_on_another() {
    let receiver = TestReceiver::start(|_| {}).await;
    let (a, b) = (support::ids(), support::ids());
    receiver
        .export_spans(vec![support::generation_span(b, &generation("chatcmpl-B"))])
        .await;

    let mut attack = feedback_on(a, "fb-attack");
    attack["response_id"] = json!("chatcmpl-B");
    let (status, body) = post(&receiver, &attack).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        failures_on(&receiver, b),
        0,
        "a failure record was filed on B"
    );
    assert_eq!(feedback_targeting(&receiver, b), 0, "the feedback joined B");

    // The waiting room: the feedback arrives first, then C's response with the named id.
    let (a2, c) = (support::ids(), support::ids());
    let mut attack = feedback_on(a2, "fb-attack-waiting");
    attack["response_id"] = json!("chatcmpl-C");
    let (status, body) = post(&receiver, &attack).await;
    assert_eq!(status, 201, "{body}");
    receiver
        .export_spans(vec![support::generation_span(c, &generation("chatcmpl-C"))])
        .await;
    assert_eq!(
        failures_on(&receiver, c),
        0,
        "a failure record was filed on C"
    );
    assert_eq!(feedback_targeting(&receiver, c), 0, "the feedback joined C");

    // The feedback still judges the span its token names once that response arrives.
    receiver
        .export_spans(vec![support::generation_span(
            a2,
            &generation("chatcmpl-A2"),
        )])
        .await;
    assert_eq!(failures_on(&receiver, a2), 1);
    assert_eq!(feedback_targeting(&receiver, a2), 1);
    receiver.stop().await.unwrap();
}

/// Idempotency ids are scoped to the judged answer: the same id on two answers is two pieces
/// of feedback, the same id again on one answer a duplicate.
#[tokio::test]
async fn idempotency_ids_are_scoped_to_the_judged_answer() {
    let receiver = TestReceiver::start(|_| {}).await;
    let (a, b) = (support::ids(), support::ids());

    let (status, body) = post(&receiver, &feedback_on(a, "fb-shared")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&receiver, &feedback_on(b, "fb-shared")).await;
    assert_eq!(
        status, 201,
        "feedback on B was taken for a duplicate: {body}"
    );
    assert_eq!(body["duplicate"], false);

    let (status, body) = post(&receiver, &feedback_on(b, "fb-shared")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);

    let stored = receiver
        .read_store()
        .inspect_int(
            "SELECT count(*) FROM feedback WHERE feedback_id = 'fb-shared'",
            &[],
        )
        .unwrap();
    assert_eq!(stored, 2);
    receiver.stop().await.unwrap();
}

/// An empty or short token secret is refused at startup instead of turning the API on with a
/// guessable key.
#[tokio::test]
async fn empty_and_short_secrets_are_refused_at_startup() {
    for secret in ["", "short-secret", &"x".repeat(31)] {
        let receiver =
            TestReceiver::start(|config| config.feedback.token_secret = Some(secret.into())).await;
        let error = receiver
            .stop()
            .await
            .expect_err("a weak secret was accepted");
        assert!(
            matches!(
                error,
                ServeError::Config(ConfigError::Invalid {
                    ref key,
                    reason: InvalidSetting::Feedback(FeedbackConfigError::SecretTooShort { bytes }),
                }) if key == "feedback.token_secret" && bytes == secret.len()
            ),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("at least 32 bytes"), "{source}");
    }
    let receiver =
        TestReceiver::start(|config| config.feedback.token_secret = Some("y".repeat(32).into()))
            .await;
    let (status, body) = post(&receiver, &feedback(&valid_token(), "fb-secret")).await;
    assert_eq!(status, 401, "{body}");
    receiver.stop().await.unwrap();
}

/// Behind a trusted proxy each client has its own bucket, keyed by `X-Forwarded-For`; from
/// an untrusted peer the header is ignored.
#[tokio::test]
async fn forwarded_clients_are_rate_limited_only_behind_trusted_proxies() {
    async fn post_from(receiver: &TestReceiver, client: &str, id: &str) -> u16 {
        reqwest::Client::new()
            .post(receiver.http_url("/v1/feedback"))
            .header("x-forwarded-for", format!("198.51.100.9, {client}"))
            .json(&feedback(&valid_token(), id))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    let limited = |config: &mut closedloop_receiver::Config| {
        config.feedback.rate_limit_per_min = 1;
        config.feedback.rate_limit_burst = 1;
    };

    let trusted = TestReceiver::start(|config| {
        limited(config);
        config.feedback.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    assert_eq!(post_from(&trusted, "203.0.113.1", "fb-t1").await, 201);
    assert_eq!(post_from(&trusted, "203.0.113.2", "fb-t2").await, 201);
    assert_eq!(post_from(&trusted, "203.0.113.1", "fb-t3").await, 429);
    trusted.stop().await.unwrap();

    let untrusted = TestReceiver::start(limited).await;
    assert_eq!(post_from(&untrusted, "203.0.113.1", "fb-u1").await, 201);
    assert_eq!(post_from(&untrusted, "203.0.113.2", "fb-u2").await, 429);
    untrusted.stop().await.unwrap();
}

#[tokio::test]
async fn bad_traceparent_flags_are_refused() {
    let receiver = TestReceiver::start(|_| {}).await;
    for flags in ["0g", "1", "001", "+1", "  "] {
        let body = json!({
            "traceparent": format!("00-{TRACE_ID}-{SPAN_ID}-{flags}"),
            "signal": "thumbs_down",
            "feedback_token": valid_token(),
        });
        let (status, body) = post(&receiver, &body).await;
        assert_eq!(status, 400, "flags {flags:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    }
    let body = json!({
        "traceparent": format!("00-{TRACE_ID}-{SPAN_ID}-01"),
        "signal": "thumbs_down",
        "feedback_token": valid_token(),
    });
    let (status, body) = post(&receiver, &body).await;
    assert_eq!(status, 201, "{body}");
    receiver.stop().await.unwrap();
}

/// An application that holds only its HTTP server span mints the token for that span: the
/// feedback joins the LLM response beneath it, whether the spans were exported before the
/// feedback or after.
#[tokio::test]
async fn a_token_naming_the_server_span_joins_the_llm_response_beneath_it() {
    let receiver = TestReceiver::start(|_| {}).await;
    let server_spans = |server: support::Ids, llm: support::Ids| {
        let mut generation = support::generation_span(llm, &generation("chatcmpl-server"));
        generation.parent_span_id = server.1.to_vec();
        let server_span = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: server.0.to_vec(),
            span_id: server.1.to_vec(),
            name: "POST /chat".into(),
            kind: 2,
            start_time_unix_nano: generation.start_time_unix_nano - 1_000_000,
            end_time_unix_nano: generation.end_time_unix_nano + 1_000_000,
            ..Default::default()
        };
        vec![server_span, generation]
    };

    let server = support::ids();
    let llm = support::child(server);
    receiver.export_spans(server_spans(server, llm)).await;
    let (status, body) = post(&receiver, &feedback_on(server, "fb-server")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(failures_on(&receiver, llm), 1);
    assert_eq!(failures_on(&receiver, server), 0);
    assert_eq!(feedback_targeting(&receiver, llm), 1);

    // The feedback first: it waits, and the spans' arrival joins it.
    let server = support::ids();
    let llm = support::child(server);
    let (status, body) = post(&receiver, &feedback_on(server, "fb-server-early")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(failures_on(&receiver, llm), 0);
    receiver.export_spans(server_spans(server, llm)).await;
    assert_eq!(failures_on(&receiver, llm), 1);
    assert_eq!(feedback_targeting(&receiver, llm), 1);
    receiver.stop().await.unwrap();
}
