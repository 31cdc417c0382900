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
    // The table is full and no bucket is idle: a new client is refused.
    assert!(limiter.check(c, start).is_err());
    // One token per second refills.
    assert!(limiter.check(a, start + Duration::from_secs(1)).is_ok());
    // Once the others have been idle long enough, they are forgotten to make room.
    assert!(limiter.check(c, start + Duration::from_secs(10)).is_ok());

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
