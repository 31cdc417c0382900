use super::*;

/// Consecutive queries of one session, labelled `true` when the second is the first asked
/// again in other words, `false` when it is a new or follow-up question.
pub(crate) const LABELLED_PAIRS: &[(&str, &str, bool)] = &[
    // Rephrasings.
    ("How do I reset my password?", "password reset steps", true),
    (
        "how do i reset my password",
        "How can I reset the password on my account?",
        true,
    ),
    (
        "I forgot my password, how do I change it",
        "forgot password change",
        true,
    ),
    (
        "Cancel my subscription",
        "How can I cancel my subscription?",
        true,
    ),
    (
        "what is your refund policy",
        "refund policy for purchases?",
        true,
    ),
    (
        "How long does shipping take?",
        "shipping time how long",
        true,
    ),
    (
        "Does the pro plan include SSO?",
        "is SSO included in the pro plan",
        true,
    ),
    (
        "how to export my data to csv",
        "export data as CSV file",
        true,
    ),
    (
        "Why was my card declined?",
        "my card got declined why",
        true,
    ),
    (
        "how do I add a team member",
        "adding team members to workspace",
        true,
    ),
    (
        "Can I change my billing address?",
        "change billing address",
        true,
    ),
    (
        "delete my account permanently",
        "how to permanently delete account",
        true,
    ),
    (
        "api rate limits",
        "what are the rate limits of the API?",
        true,
    ),
    (
        "How do I enable two factor authentication",
        "enable 2fa two-factor authentication",
        true,
    ),
    (
        "where can i download invoices",
        "download my invoices",
        true,
    ),
    (
        "How do I reset my pasword?",
        "how do i reset my password",
        true,
    ),
    (
        "integrate with slack",
        "how do I connect slack integration",
        true,
    ),
    (
        "what payment methods do you accept",
        "accepted payment methods",
        true,
    ),
    ("how to upgrade my plan", "upgrade plan how", true),
    (
        "the app crashes on startup",
        "app keeps crashing at startup",
        true,
    ),
    ("set up webhooks", "how do I configure webhooks?", true),
    ("how do i invite users", "inviting users to my org", true),
    (
        "Is there a mobile app?",
        "do you have a mobile application",
        true,
    ),
    (
        "change my email address",
        "how can I update my email address",
        true,
    ),
    // Unrelated questions.
    (
        "How do I reset my password?",
        "Which plans include SSO?",
        false,
    ),
    (
        "Cancel my subscription",
        "What are your office hours?",
        false,
    ),
    (
        "how to export my data to csv",
        "Why was my card declined?",
        false,
    ),
    ("api rate limits", "how do I add a team member", false),
    (
        "Is there a mobile app?",
        "what payment methods do you accept",
        false,
    ),
    ("set up webhooks", "change my email address", false),
    (
        "where can i download invoices",
        "the app crashes on startup",
        false,
    ),
    (
        "How long does shipping take?",
        "Can I change my billing address?",
        false,
    ),
    (
        "integrate with slack",
        "delete my account permanently",
        false,
    ),
    ("how do i invite users", "what is your refund policy", false),
    (
        "how do I change my email",
        "how do I reset my password",
        false,
    ),
    (
        "how do I add a team member",
        "how do I remove a team member",
        false,
    ),
    // Follow-ups on the same topic.
    (
        "How do I reset my password?",
        "What if I don't get the reset email?",
        false,
    ),
    (
        "Cancel my subscription",
        "Will I get a refund after cancelling?",
        false,
    ),
    (
        "what is your refund policy",
        "how long until the refund arrives on my card",
        false,
    ),
    (
        "How long does shipping take?",
        "Do you ship to Canada?",
        false,
    ),
    (
        "Does the pro plan include SSO?",
        "How much does the pro plan cost per seat?",
        false,
    ),
    (
        "how to export my data to csv",
        "can I schedule the export weekly",
        false,
    ),
    (
        "Why was my card declined?",
        "can I pay with paypal instead",
        false,
    ),
    ("api rate limits", "how do I request a higher limit", false),
    (
        "How do I enable two factor authentication",
        "I lost my phone with the authenticator app",
        false,
    ),
    (
        "set up webhooks",
        "how do I verify the webhook signature",
        false,
    ),
    ("Is there a mobile app?", "does it work offline", false),
    (
        "integrate with slack",
        "can it post to a private channel",
        false,
    ),
];

#[test]
fn identical_queries_are_identical() {
    let a = fingerprint("How do I reset my password?");
    let b = fingerprint("how do i reset my password");
    assert_eq!(a.similarity(&b), Some(1.0));
}

#[test]
fn empty_query_has_no_similarity() {
    let empty = fingerprint("?? the a");
    assert!(empty.is_empty());
    assert_eq!(empty.similarity(&fingerprint("reset password")), None);
    assert_eq!(empty.to_string(), "mh64v3:");
}

#[test]
fn round_trips_through_the_attribute_string() {
    let fp = fingerprint("how do I export my data to CSV?");
    let text = fp.to_string();
    assert!(text.starts_with("mh64v3:"));
    // "export" is one contrast mark: two more hex digits.
    assert_eq!(text.len(), "mh64v3:".len() + V2_HEX_LEN + 2);
    let parsed: Fingerprint = text.parse().unwrap();
    assert_eq!(parsed, fp);
    assert_eq!(parsed.similarity(&fp), Some(1.0));
    assert_eq!("mh64v3:".parse::<Fingerprint>().unwrap(), fingerprint(""));
    let unmarked = fingerprint("reset my password").to_string();
    assert_eq!(unmarked.len(), "mh64v3:".len() + V2_HEX_LEN);
    assert_eq!(
        unmarked.parse::<Fingerprint>().unwrap().to_string(),
        unmarked
    );
}

#[test]
fn the_previous_scheme_compares_with_the_current_one() {
    let current = fingerprint("How do I turn off two-factor authentication?");
    let text = current.to_string();
    let previous: Fingerprint = format!("mh64v2:{}", &text["mh64v3:".len()..][..V2_HEX_LEN])
        .parse()
        .unwrap();
    assert_eq!(previous.scheme(), "mh64v2");
    assert_eq!(previous.to_string().len(), "mh64v2:".len() + V2_HEX_LEN);
    assert_eq!(previous.similarity(&current), Some(1.0));
    assert_eq!(previous.bands(), current.bands());
    // Without marks on both sides, nothing is known about contrasts.
    let on = fingerprint("How do I turn on two-factor authentication?");
    assert!(current.contrasts(&on));
    assert!(!previous.contrasts(&on));
    assert!(!on.contrasts(&previous));
    assert!("mh64v2:".parse::<Fingerprint>().unwrap().is_empty());
}

#[test]
fn swapped_opposites_contrast() {
    let contrast = |a: &str, b: &str| {
        let by_marks = fingerprint(a).contrasts(&fingerprint(b));
        assert_eq!(by_marks, queries_contrast(a, b), "{a} / {b}");
        assert_eq!(by_marks, queries_contrast(b, a), "{b} / {a}");
        by_marks
    };
    // A phrase, a synonym the MinHash would merge, and a prefix.
    assert!(contrast("turn on 2FA", "How do I turn off two-factor?"));
    assert!(contrast("How do I add a teammate?", "remove a teammate"));
    assert!(contrast(
        "export contacts to CSV",
        "import contacts from csv"
    ));
    assert!(contrast(
        "How do I freeze my card?",
        "How do I unfreeze my card?"
    ));
    // A state and its remedy are one question; so is a query that names both sides.
    assert!(!contrast("account locked", "How do I unlock my account?"));
    assert!(!contrast("my card is blocked", "how can i unblock my card"));
    assert!(!contrast(
        "enable or disable notifications",
        "how do I disable notifications"
    ));
    // Different pairs, or one side only, do not contrast.
    assert!(!contrast("How do I export my data?", "download my data"));
    assert!(!contrast(
        "How do I cancel my subscription?",
        "pause my subscription"
    ));
    assert!(!contrast("reset password", "reset password"));
    assert!(!contrast("", "disable 2FA"));
}

#[test]
fn contrast_lists_are_well_formed() {
    for (first, second) in CONTRASTS {
        for word in first.iter().chain(second.iter()) {
            assert_eq!(
                raw_words(word),
                [word.to_string()],
                "{word} is one lowercase word"
            );
        }
        assert!(first.iter().all(|word| !second.contains(word)));
    }
    assert!(2 * CONTRASTS.len() <= 256, "a mark fits in one byte");
}

#[test]
fn first_scheme_is_still_parsed_and_compared() {
    let a = fingerprint_mh64("How do I reset my password?");
    let b = fingerprint_mh64("how do i reset my password");
    let text = a.to_string();
    assert!(text.starts_with("mh64:"));
    assert_eq!(text.len(), "mh64:".len() + SLOTS * 4);
    let parsed: Fingerprint = text.parse().unwrap();
    assert_eq!(parsed.scheme(), "mh64");
    assert_eq!(parsed.similarity(&b), Some(1.0));
    let unrelated = fingerprint_mh64("Which plans include SSO?");
    assert!(parsed.similarity(&unrelated).unwrap() < 0.3);
    assert!("mh64:".parse::<Fingerprint>().unwrap().is_empty());
    // Schemes are never compared with each other.
    let v3 = fingerprint("How do I reset my password?");
    assert_eq!(v3.scheme(), "mh64v3");
    assert_eq!(parsed.similarity(&v3), None);
    assert_eq!(v3.similarity(&parsed), None);
}

#[test]
fn synonyms_and_phrasal_verbs_are_canonical() {
    let same = |a: &str, b: &str| fingerprint(a).similarity(&fingerprint(b));
    assert_eq!(
        same("cancel my subscription", "terminate my subscriptions"),
        Some(1.0)
    );
    assert_eq!(same("turn on 2FA", "enable two-factor"), Some(1.0));
    assert!(same("turn on 2FA", "turn off 2FA").unwrap() < 0.75);
}

#[test]
fn shortened_queries_stay_close() {
    let long = fingerprint("What is the process for cancelling my monthly subscription?");
    let short = fingerprint("cancel monthly subscription");
    assert!(long.similarity(&short).unwrap() >= SUGGESTED_REPHRASE_THRESHOLD);
}

#[test]
fn rejects_malformed_attribute_strings() {
    assert_eq!(
        "0f3a".parse::<Fingerprint>(),
        Err(ParseFingerprintError::MissingScheme)
    );
    assert_eq!(
        "sh64:0f3a".parse::<Fingerprint>(),
        Err(ParseFingerprintError::UnknownScheme("sh64".into()))
    );
    assert_eq!(
        "mh64:0f3a".parse::<Fingerprint>(),
        Err(ParseFingerprintError::BadSignature)
    );
    let not_hex = format!("mh64:{}", "zz".repeat(SLOTS * 2));
    assert_eq!(
        not_hex.parse::<Fingerprint>(),
        Err(ParseFingerprintError::BadSignature)
    );
    for bad in [
        "mh64v2:0f3a".to_owned(),
        format!("mh64v2:{}", "zz".repeat(V2_HEX_LEN / 2)),
        format!("mh64v2:0000{}", "ab".repeat(V2_SLOTS)),
        format!("mh64v2:0a0é{}", "ab".repeat(V2_SLOTS)),
        // Marks only in `mh64v3`, ascending, and known.
        format!("mh64v2:0a0b{}02", "ab".repeat(V2_SLOTS)),
        format!("mh64v3:0a0b{}0402", "ab".repeat(V2_SLOTS)),
        format!("mh64v3:0a0b{}0202", "ab".repeat(V2_SLOTS)),
        format!("mh64v3:0a0b{}ff", "ab".repeat(V2_SLOTS)),
        format!("mh64v3:0a0b{}0", "ab".repeat(V2_SLOTS)),
        format!("mh64v3:0a0b{}", "ab".repeat(V2_SLOTS - 1)),
    ] {
        assert_eq!(
            bad.parse::<Fingerprint>(),
            Err(ParseFingerprintError::BadSignature),
            "{bad}"
        );
    }
}

#[test]
fn is_stable_across_releases() {
    // The scheme name promises these exact bytes; a change needs a new scheme name.
    let fp = fingerprint("reset password");
    let again = fingerprint("Reset   PASSWORD!!");
    assert_eq!(fp, again);
    assert_eq!(
        &fp.to_string()[..9],
        &fingerprint("reset password").to_string()[..9]
    );
}

/// Precision and recall of `similarity >= threshold` as a rephrase detector on the pairs.
fn precision_recall(threshold: f64) -> (f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (a, b, rephrase) in LABELLED_PAIRS {
        let s = fingerprint(a).similarity(&fingerprint(b)).unwrap_or(0.0);
        match (s >= threshold, *rephrase) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    (tp / (tp + fp), tp / (tp + fn_))
}

#[test]
fn separates_rephrasings_from_new_and_follow_up_questions() {
    let (precision, recall) = precision_recall(SUGGESTED_REPHRASE_THRESHOLD);
    assert!(
        precision >= 0.9 && recall >= 0.7,
        "precision {precision:.2}, recall {recall:.2} at {SUGGESTED_REPHRASE_THRESHOLD}"
    );
}

#[test]
#[ignore = "prints the similarity of every labelled pair; run with --ignored --nocapture"]
fn print_labelled_similarities() {
    for (a, b, rephrase) in LABELLED_PAIRS {
        let s = fingerprint(a).similarity(&fingerprint(b)).unwrap_or(0.0);
        println!("{s:.3} {rephrase:5} {a:?} / {b:?}");
    }
    for t in [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5] {
        let (p, r) = precision_recall(t);
        println!("threshold {t:.2}: precision {p:.2} recall {r:.2}");
    }
}
