use super::*;

fn span(n: u8) -> SpanRef {
    SpanRef::new([n; 16], [n; 8]).unwrap()
}

fn turn(n: u8, query: &str, text: bool) -> Turn {
    Turn {
        span: span(n),
        start_ns: i64::from(n) * 60_000_000_000,
        end_ns: i64::from(n) * 60_000_000_000 + 1_000_000_000,
        fingerprint: Some(closedloop_tracing::fingerprint(query).to_string()),
        text: text.then(|| query.to_owned()),
        response_id: None,
        session_id: Some("s".into()),
        user_id: None,
    }
}

#[test]
fn text_is_preferred_to_fingerprints() {
    let a = turn(1, "How do I cancel my subscription?", true);
    let b = turn(2, "cancel subscription", true);
    assert!(matches!(compare(&a, &b), Some(Similarity::Text(_))));
    let b = turn(2, "cancel subscription", false);
    assert!(matches!(compare(&a, &b), Some(Similarity::Fingerprint(_))));
    let mut broken = turn(3, "cancel subscription", false);
    broken.fingerprint = Some("mh64v2:00".into());
    assert_eq!(compare(&a, &broken), None);
}

#[test]
fn edit_threshold_follows_the_configuration() {
    let edit = |value: f64| Feedback {
        feedback_id: "e".into(),
        span: None,
        target: Some(span(1)),
        response_id: None,
        signal: FeedbackSignal::Edit,
        kind: FeedbackKind::Implicit,
        value: Some(value),
        category: None,
        source: FeedbackSource::App,
        comment: None,
        session_id: None,
        user_id: None,
        time_unix_nano: 0,
    };
    let default = Detectors::new(&DetectorsConfig::default());
    assert!(default.is_negative(&edit(0.3)));
    assert!(!default.is_negative(&edit(0.7)));
    let strict = Detectors::new(&DetectorsConfig {
        edit: EditDetectorConfig {
            max_changed_fraction: 0.2,
            ..Default::default()
        },
        ..Default::default()
    });
    assert!(strict.is_negative(&edit(0.7)));
    assert!(!strict.is_negative(&edit(0.9)));
    let off = Detectors::new(&DetectorsConfig {
        edit: EditDetectorConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    });
    assert!(!off.is_negative(&edit(0.0)));
}

#[test]
fn feedback_ids_name_the_judged_span() {
    assert_eq!(
        detector_feedback_id(FeedbackSignal::Rephrase, span(1)),
        format!("det:rephrase:{}:{}", "01".repeat(16), "01".repeat(8))
    );
}
