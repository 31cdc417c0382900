use super::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn parse(json: serde_json::Value) -> Result<Validated, FeedbackApiError> {
    parse_with(json, &FeedbackApiConfig::default())
}

fn parse_with(
    json: serde_json::Value,
    config: &FeedbackApiConfig,
) -> Result<Validated, FeedbackApiError> {
    serde_json::from_value::<FeedbackRequest>(json)
        .map_err(|error| FeedbackApiError::Malformed(error.to_string()))?
        .validate(config)
}

fn field_of(error: FeedbackApiError) -> &'static str {
    match error {
        FeedbackApiError::InvalidField { field, .. } => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn ids_in_either_case_and_thumbs_defaults() {
    let validated = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID.to_ascii_uppercase(), "span_id": SPAN_ID },
        "signal": "thumbs_down",
        "feedback_token": "t",
        "idempotency_id": "fb-1",
    }))
    .unwrap();
    let input = validated.input;
    assert_eq!(hex::encode(input.trace_id), TRACE_ID);
    assert_eq!(hex::encode(input.span_id), SPAN_ID);
    assert_eq!(input.signal, FeedbackSignal::ThumbsDown);
    assert_eq!(input.value, Some(0.0));
    assert_eq!(input.source, FeedbackSource::User);
    assert_eq!(input.idempotency_id.as_deref(), Some("fb-1"));
    assert_eq!(validated.token, "t");
}

#[test]
fn traceparent_in_both_places() {
    let traceparent = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    for json in [
        serde_json::json!({ "traceparent": traceparent, "signal": "copy", "feedback_token": "t" }),
        serde_json::json!({ "response": { "traceparent": traceparent }, "signal": "copy", "feedback_token": "t" }),
    ] {
        let input = parse(json).unwrap().input;
        assert_eq!(hex::encode(input.trace_id), TRACE_ID);
        assert_eq!(hex::encode(input.span_id), SPAN_ID);
        assert_eq!(input.value, None);
    }
    for bad in [
        "00-xyz",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let error = parse(
            serde_json::json!({ "traceparent": bad, "signal": "copy", "feedback_token": "t" }),
        )
        .unwrap_err();
        assert_eq!(field_of(error), "traceparent", "{bad}");
    }
}

#[test]
fn rating_is_normalised() {
    let input = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "rating", "rating": 4, "scale": 5, "feedback_token": "t",
    }))
    .unwrap()
    .input;
    assert_eq!(input.value, Some(0.75));

    let base = |extra: serde_json::Value| {
        let mut json = serde_json::json!({
            "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
            "signal": "rating", "feedback_token": "t",
        });
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json
    };
    assert_eq!(
        field_of(parse(base(serde_json::json!({}))).unwrap_err()),
        "rating"
    );
    assert_eq!(
        field_of(parse(base(serde_json::json!({"rating": 6, "scale": 5}))).unwrap_err()),
        "rating"
    );
    assert_eq!(
        field_of(parse(base(serde_json::json!({"rating": 1, "scale": 1}))).unwrap_err()),
        "scale"
    );
    assert_eq!(
        field_of(parse(base(serde_json::json!({"rating": 3}))).unwrap_err()),
        "scale"
    );
    assert_eq!(
        field_of(parse(base(serde_json::json!({"value": 1.5}))).unwrap_err()),
        "value"
    );
    assert_eq!(
        field_of(
            parse(base(
                serde_json::json!({"value": 0.5, "rating": 3, "scale": 5})
            ))
            .unwrap_err()
        ),
        "rating"
    );
    assert_eq!(
        parse(base(serde_json::json!({"value": 0.25})))
            .unwrap()
            .input
            .value,
        Some(0.25)
    );
}

#[test]
fn unknown_values_and_fields_are_clear_errors() {
    let error = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "meh", "feedback_token": "t",
    }))
    .unwrap_err();
    assert!(error.to_string().contains("thumbs_down"), "{error}");
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);

    let error = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "thumbs_down", "category": "vibes", "feedback_token": "t",
    }))
    .unwrap_err();
    assert_eq!(field_of(error), "category");

    let error = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "thumbs_down", "catgory": "format", "feedback_token": "t",
    }))
    .unwrap_err();
    assert!(error.to_string().contains("catgory"), "{error}");

    let error =
        parse(serde_json::json!({ "signal": "thumbs_down", "feedback_token": "t" })).unwrap_err();
    assert_eq!(field_of(error), "response");

    let error = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID }, "signal": "thumbs_down",
    }))
    .unwrap_err();
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn comments_are_dropped_unless_captured() {
    let json = serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "thumbs_down", "comment": "ünïcödé comment", "feedback_token": "t",
    });
    assert_eq!(parse(json.clone()).unwrap().input.comment, None);

    let config = FeedbackApiConfig {
        capture_comments: true,
        max_comment_chars: 5,
        ..FeedbackApiConfig::default()
    };
    assert_eq!(
        parse_with(json, &config).unwrap().input.comment.as_deref(),
        Some("ünïcö")
    );
}

#[test]
fn ids_are_bounded() {
    let error = parse(serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
        "signal": "thumbs_down", "feedback_token": "t", "session_id": "x".repeat(300),
    }))
    .unwrap_err();
    assert_eq!(field_of(error), "session_id");
}

#[test]
fn token_bucket_limits_each_client() {
    let config = FeedbackApiConfig {
        rate_limit_per_min: 60,
        rate_limit_burst: 2,
        rate_limit_max_clients: 2,
        ..FeedbackApiConfig::default()
    };
    let limiter = RateLimiter::new(&config).unwrap();
    let start = Instant::now();
    let a: IpAddr = "127.0.0.1".parse().unwrap();
    let b: IpAddr = "127.0.0.2".parse().unwrap();
    let c: IpAddr = "127.0.0.3".parse().unwrap();
    assert!(limiter.check(a, start).is_ok());
    assert!(limiter.check(a, start).is_ok());
    let wait = limiter.check(a, start).unwrap_err();
    assert!(
        wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    // Another client has its own bucket.
    assert!(limiter.check(b, start).is_ok());
    // One token per second refills.
    assert!(limiter.check(a, start + Duration::from_secs(1)).is_ok());
    // The table is full: a new client takes the least recently seen one's place (b's).
    assert!(limiter.check(c, start + Duration::from_secs(1)).is_ok());
    assert!(limiter.check(a, start + Duration::from_secs(1)).is_err());

    let off = FeedbackApiConfig {
        rate_limit_per_min: 0,
        ..FeedbackApiConfig::default()
    };
    assert!(RateLimiter::new(&off).is_none());
}

#[test]
fn cors_origins_are_validated() {
    assert!(cors_layer(&[]).is_ok());
    assert!(cors_layer(&["https://app.example.com".into(), "*".into()]).is_ok());
    assert!(matches!(
        cors_layer(&["app.example.com".into()]),
        Err(FeedbackConfigError::InvalidOrigin(_))
    ));
    assert!(matches!(
        cors_layer(&["https://app.example.com/".into()]),
        Err(FeedbackConfigError::InvalidOrigin(_))
    ));
}

#[test]
fn response_ref_json_as_the_application_hands_it_over() {
    let input = serde_json::json!({
        "response": {
            "trace_id": TRACE_ID, "span_id": SPAN_ID,
            "traceparent": format!("00-{TRACE_ID}-{SPAN_ID}-01"),
            "feedback_token": "nested",
        },
        "signal": "thumbs_up",
    });
    let validated = parse(input).unwrap();
    assert_eq!(validated.token, "nested");
    assert_eq!(validated.input.value, Some(1.0));

    let mismatch = serde_json::json!({
        "response": {
            "trace_id": TRACE_ID, "span_id": SPAN_ID,
            "traceparent": format!("00-{TRACE_ID}-1111111111111111-01"),
        },
        "signal": "thumbs_up", "feedback_token": "t",
    });
    assert_eq!(
        field_of(parse(mismatch).unwrap_err()),
        "response.traceparent"
    );

    let two_tokens = serde_json::json!({
        "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID, "feedback_token": "a" },
        "signal": "thumbs_up", "feedback_token": "b",
    });
    assert_eq!(field_of(parse(two_tokens).unwrap_err()), "feedback_token");
}

#[test]
fn traceparent_version_and_flags_are_hex() {
    for bad in [
        format!("00-{TRACE_ID}-{SPAN_ID}-0g"),
        format!("00-{TRACE_ID}-{SPAN_ID}-+1"),
        format!("0x-{TRACE_ID}-{SPAN_ID}-01"),
        format!("FF-{TRACE_ID}-{SPAN_ID}-01"),
        format!("00-{TRACE_ID}-{SPAN_ID}-1"),
    ] {
        let error = parse(
            serde_json::json!({ "traceparent": bad, "signal": "copy", "feedback_token": "t" }),
        )
        .unwrap_err();
        assert_eq!(field_of(error), "traceparent", "{bad}");
    }
    // A later version may carry more fields after the flags.
    for good in [
        format!("00-{TRACE_ID}-{SPAN_ID}-ff"),
        format!("cc-{TRACE_ID}-{SPAN_ID}-09-what-the-future-holds"),
    ] {
        let input = parse(
            serde_json::json!({ "traceparent": good, "signal": "copy", "feedback_token": "t" }),
        )
        .unwrap()
        .input;
        assert_eq!(hex::encode(input.span_id), SPAN_ID);
    }
}

/// A table full of active clients never locks a new client out: the least recently seen one
/// is forgotten.
#[test]
fn a_full_table_evicts_the_least_recently_seen_client() {
    let config = FeedbackApiConfig {
        rate_limit_per_min: 1,
        rate_limit_burst: 1,
        rate_limit_max_clients: 50,
        ..FeedbackApiConfig::default()
    };
    let limiter = RateLimiter::new(&config).unwrap();
    let now = Instant::now();
    let client = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
    // 50 clients fill the table and use up their burst.
    for n in 0..50 {
        assert!(limiter.check(client(n), now).is_ok());
    }
    // Client 0 is seen again (and refused: its bucket is empty), so client 1 is the least
    // recently seen.
    assert!(limiter.check(client(0), now).is_err());
    // A new client is let in at once.
    assert!(limiter.check(client(50), now).is_ok(), "locked out");
    // It took client 1's place: client 0 is still limited, client 1 starts afresh.
    assert!(limiter.check(client(0), now).is_err());
    assert!(limiter.check(client(1), now).is_ok());
}

#[test]
fn trusted_proxies_name_the_client() {
    let proxies = TrustedProxies::parse(&[
        "10.0.0.0/8".into(),
        "2001:db8::1".into(),
        "192.0.2.7".into(),
    ])
    .unwrap();
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    let with = |name: &'static str, values: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    };
    let xff = |values: &[&str]| with(X_FORWARDED_FOR, values);

    // From an untrusted peer the header is ignored.
    let untrusted = ip("203.0.113.5");
    assert_eq!(
        proxies.client(untrusted, &xff(&["198.51.100.1"])),
        untrusted
    );
    // From a trusted proxy: the rightmost hop that is not a trusted proxy, across lines.
    let proxy = ip("10.1.2.3");
    assert_eq!(
        proxies.client(proxy, &xff(&["1.1.1.1, 198.51.100.1", "10.9.9.9"])),
        ip("198.51.100.1")
    );
    assert_eq!(
        proxies.client(proxy, &xff(&["[2001:db8::2]:4711, 192.0.2.7"])),
        ip("2001:db8::2")
    );
    // An IPv4-mapped peer on a dual-stack socket is the IPv4 proxy.
    assert_eq!(
        proxies.client(ip("::ffff:10.1.2.3"), &xff(&["198.51.100.1"])),
        ip("198.51.100.1")
    );
    // No header, or an unreadable hop before any client: the proxy itself.
    assert_eq!(proxies.client(proxy, &HeaderMap::new()), proxy);
    assert_eq!(
        proxies.client(proxy, &xff(&["198.51.100.1, garbage"])),
        proxy
    );
    // Only trusted hops: the first of them.
    assert_eq!(
        proxies.client(proxy, &xff(&["10.0.0.1, 10.0.0.2"])),
        ip("10.0.0.1")
    );
    // `Forwarded` when there is no X-Forwarded-For.
    let forwarded = with(
        "forwarded",
        &["for=198.51.100.1;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1"],
    );
    assert_eq!(proxies.client(proxy, &forwarded), ip("2001:db8:cafe::17"));
    let forwarded = with("forwarded", &["for=198.51.100.1, for=unknown"]);
    assert_eq!(proxies.client(proxy, &forwarded), proxy);

    for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/", "::/129"] {
        assert!(
            matches!(
                TrustedProxies::parse(&[bad.into()]),
                Err(FeedbackConfigError::InvalidTrustedProxy(_))
            ),
            "{bad}"
        );
    }
    let all = TrustedProxies::parse(&["0.0.0.0/0".into()]).unwrap();
    assert!(all.is_trusted(ip("255.1.2.3")));
    assert!(!all.is_trusted(ip("::2")));
}

#[test]
fn weak_secrets_are_configuration_errors() {
    let with_secret = |secret: Option<&str>| FeedbackApiConfig {
        token_secret: secret.map(Into::into),
        ..FeedbackApiConfig::default()
    };
    for (secret, bytes) in [("", 0), ("hunter2", 7), (&"s".repeat(31)[..], 31)] {
        assert!(
            matches!(
                validate(&with_secret(Some(secret))),
                Err(FeedbackConfigError::SecretTooShort { bytes: found }) if found == bytes
            ),
            "{secret:?}"
        );
    }
    assert!(validate(&with_secret(Some(&"s".repeat(32)))).is_ok());
    assert!(validate(&with_secret(None)).is_ok());
}
