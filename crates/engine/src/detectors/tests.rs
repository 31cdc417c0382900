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
        semantic_fingerprint: None,
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
    assert!(compare(&a, &b).unwrap().from_text);
    let b = turn(2, "cancel subscription", false);
    let comparison = compare(&a, &b).unwrap();
    assert!(!comparison.from_text && comparison.lexical.is_some());
    let mut broken = turn(3, "cancel subscription", false);
    broken.fingerprint = Some("mh64v2:00".into());
    assert_eq!(compare(&a, &broken), None);
}

/// A semantic fingerprint of `model` for an embedding `mix` of the way between two fixed
/// directions.
fn semantic(model: &str, mix: f32) -> String {
    let a: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
        .collect();
    let b: Vec<f32> = (0..64)
        .map(|i| ((i * 53 % 97) as f32) / 48.0 - 1.0)
        .collect();
    let v: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (1.0 - mix) * x + mix * y)
        .collect();
    closedloop_tracing::SemanticHasher::new(model, 64)
        .unwrap()
        .fingerprint(&v)
        .unwrap()
        .to_string()
}

#[test]
fn semantic_fingerprints_of_one_model_are_compared_beside_the_lexical_ones() {
    let mut a = turn(1, "The search doesn't return any results", false);
    let mut b = turn(2, "Search isn't finding anything", false);
    a.semantic_fingerprint = Some(semantic("m", 0.0));
    b.semantic_fingerprint = Some(semantic("m", 0.05));
    let comparison = compare(&a, &b).unwrap();
    assert!(comparison.semantic.unwrap() > 0.9, "{comparison:?}");
    assert!(comparison.lexical.unwrap() < 0.75, "{comparison:?}");
    let config = RephraseDetectorConfig::default();
    assert!(config.rephrases(&comparison));
    // The lexical fingerprints alone would not say so.
    assert!(!config.rephrases(&QueryComparison {
        semantic: None,
        ..comparison
    }));
    // Another model's fingerprint is never compared.
    b.semantic_fingerprint = Some(semantic("other", 0.05));
    assert_eq!(compare(&a, &b).unwrap().semantic, None);
    // Semantic fingerprints alone are enough to compare.
    a.fingerprint = None;
    b.fingerprint = None;
    b.semantic_fingerprint = Some(semantic("m", 0.05));
    assert!(a.has_query() && compare(&a, &b).unwrap().lexical.is_none());
}

#[test]
fn the_combined_rule() {
    let config = RephraseDetectorConfig::default();
    let judge = |lexical: Option<f64>, semantic: Option<f64>| {
        config.rephrases(&QueryComparison {
            lexical,
            from_text: false,
            semantic,
            contrast: false,
        })
    };
    // Meaning alone suffices.
    assert!(judge(Some(0.1), Some(config.semantic_threshold)));
    assert!(!judge(Some(0.1), Some(config.semantic_threshold - 0.01)));
    // Close words need some meaning too: a shortened or misspelt query passes, a different
    // question on the same words does not.
    assert!(judge(
        Some(config.semantic_lexical_threshold),
        Some(config.semantic_floor)
    ));
    assert!(!judge(Some(1.0), Some(config.semantic_floor - 0.01)));
    assert!(!judge(
        Some(config.semantic_lexical_threshold - 0.01),
        Some(config.semantic_floor)
    ));
    // Without a semantic similarity the lexical threshold decides, as before.
    assert!(judge(Some(config.threshold), None));
    assert!(!judge(Some(config.threshold - 0.01), None));
    assert!(!judge(None, None));
    // A swap of opposite actions is another question, however close.
    let swapped = QueryComparison {
        lexical: Some(1.0),
        from_text: false,
        semantic: Some(1.0),
        contrast: true,
    };
    assert!(!config.rephrases(&swapped));
    assert!(!config.rephrases(&QueryComparison {
        semantic: None,
        ..swapped
    }));
}

#[test]
fn opposite_actions_contrast_by_text_and_by_fingerprint() {
    let a = turn(1, "How do I turn on two-factor authentication?", false);
    let b = turn(2, "How do I turn off two-factor authentication?", false);
    let by_fingerprint = compare(&a, &b).unwrap();
    assert!(!by_fingerprint.from_text && by_fingerprint.contrast);
    let (mut a, mut b) = (a, b);
    a.text = Some("How do I turn on two-factor authentication?".into());
    b.text = Some("how to disable 2FA".into());
    let by_text = compare(&a, &b).unwrap();
    assert!(by_text.from_text && by_text.contrast);
    // A state and its remedy are one question.
    b.text = Some("two-factor authentication is enabled, how do I switch it on".into());
    assert!(!compare(&a, &b).unwrap().contrast);
    // Fingerprints of the previous scheme carry no marks: nothing is known.
    for turn in [&mut a, &mut b] {
        turn.text = None;
        let signature = turn.fingerprint.take().unwrap()["mh64v3:".len()..][..260].to_owned();
        turn.fingerprint = Some(format!("mh64v2:{signature}"));
    }
    let previous_scheme = compare(&a, &b).unwrap();
    assert!(previous_scheme.lexical.is_some() && !previous_scheme.contrast);
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
