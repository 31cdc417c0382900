//! `closedloop report` on a fixture whose numbers are computed by hand below.
//!
//! Template `answer` version `v1`: 40 responses, 5 failures (all `irrelevant_context`).
//! Version `v2`: 40 responses, 15 failures (12 `hallucination`, 3 `irrelevant_context`).
//! Every response has chunk `kb-common`; `kb-bad` is in 10 v2 responses (8 failing),
//! `kb-good` in 10 passing v1 responses, `kb-rare` in 2 failing ones (under the minimum).

mod support;

use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within {tolerance} of {expected}"
    );
}

/// One response (in its own session) and, when `failure` names a category, a thumbs-down
/// asserting it.
fn response(version: &'static str, chunks: Vec<&'static str>, failure: Option<&str>) -> Vec<Span> {
    let ids = ids();
    let generation = Generation {
        template_id: "answer",
        template_version: version,
        chunk_ids: Some(chunks),
        ..Generation::default()
    };
    let mut span = generation_span(ids, &generation);
    span.attributes.retain(|kv| kv.key != attr::SESSION_ID);
    span.attributes
        .push(text(attr::SESSION_ID, &format!("s-{}", hex::encode(ids.0))));
    let mut spans = vec![span];
    if let Some(category) = failure {
        spans.push(feedback_span(
            child(ids),
            Some(ids),
            "thumbs_down",
            vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, category)],
        ));
    }
    spans
}

#[tokio::test(flavor = "multi_thread")]
async fn report_matches_the_hand_computed_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    let mut spans = Vec::new();
    // v1: 10 passing responses with kb-good, 25 other passing, 5 failing.
    for _ in 0..10 {
        spans.extend(response("v1", vec!["kb-common", "kb-good"], None));
    }
    for _ in 0..25 {
        spans.extend(response("v1", vec!["kb-common"], None));
    }
    for _ in 0..5 {
        spans.extend(response(
            "v1",
            vec!["kb-common"],
            Some("irrelevant_context"),
        ));
    }
    pipeline.ingest(request(spans)).await.unwrap();
    // v2 appears after v1, so it is the latest version.
    let mut spans = Vec::new();
    // kb-bad: 8 failing (hallucination) and 2 passing.
    for _ in 0..8 {
        spans.extend(response(
            "v2",
            vec!["kb-common", "kb-bad"],
            Some("hallucination"),
        ));
    }
    for _ in 0..2 {
        spans.extend(response("v2", vec!["kb-common", "kb-bad"], None));
    }
    // kb-rare: 2 failing responses only, below the minimum count of 5.
    for _ in 0..2 {
        spans.extend(response(
            "v2",
            vec!["kb-common", "kb-rare"],
            Some("hallucination"),
        ));
    }
    for _ in 0..2 {
        spans.extend(response("v2", vec!["kb-common"], Some("hallucination")));
    }
    for _ in 0..3 {
        spans.extend(response(
            "v2",
            vec!["kb-common"],
            Some("irrelevant_context"),
        ));
    }
    // 40 − 8 − 2 − 2 − 2 − 3 = 23 other passing responses.
    for _ in 0..23 {
        spans.extend(response("v2", vec!["kb-common"], None));
    }
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();

    let store = dir.path().join("closedloop.db");
    let json_path = dir.path().join("report.json");
    closedloop(&[
        "report",
        "--store-path",
        store.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ])
    .await
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let number = |value: &serde_json::Value| value.as_f64().unwrap();

    assert_eq!(report["responses"], 80);
    assert_eq!(report["failures"], 20);
    // Baseline 20 / 80 = 0.25.
    close(number(&report["baseline_rate"]), 0.25, 1e-12, "baseline");

    let versions = report["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let v1 = &versions[0];
    assert_eq!(v1["template_version"], "v1");
    assert_eq!(
        (v1["responses"].as_u64(), v1["failures"].as_u64()),
        (Some(40), Some(5))
    );
    // Wilson, 5/40: p = 0.125, z² = 3.841459, denominator = 1 + z²/40 = 1.0960365,
    // centre = (0.125 + z²/80) / 1.0960365 = 0.1730182 / 1.0960365 = 0.1578581,
    // margin = z·√(0.125·0.875/40 + z²/6400) / 1.0960365 = 1.959964·0.0577438 / 1.0960365
    //        = 0.1032631, so [0.0545950, 0.2611212].
    close(number(&v1["failure_rate"]), 0.125, 1e-12, "v1 rate");
    close(number(&v1["wilson_low"]), 0.054_595_0, 1e-6, "v1 low");
    close(number(&v1["wilson_high"]), 0.261_121_2, 1e-6, "v1 high");
    let v2 = &versions[1];
    assert_eq!(v2["template_version"], "v2");
    assert_eq!(
        (v2["responses"].as_u64(), v2["failures"].as_u64()),
        (Some(40), Some(15))
    );
    // Wilson, 15/40: p = 0.375, centre = (0.375 + 0.0480182) / 1.0960365 = 0.3859527,
    // margin = 1.959964·√(0.375·0.625/40 + z²/6400) / 1.0960365 = 0.1437229,
    // so [0.2422298, 0.5296756].
    close(number(&v2["wilson_low"]), 0.242_229_8, 1e-6, "v2 low");
    close(number(&v2["wilson_high"]), 0.529_675_6, 1e-6, "v2 high");
    assert_eq!(v2["categories"]["hallucination"], 12);
    assert_eq!(v2["categories"]["irrelevant_context"], 3);

    // v1 -> v2: pooled rate 0.25, smallest expected count 40·0.25 = 10 >= 5, so the z-test:
    // se = √(0.25·0.75·(1/40 + 1/40)) = 0.0968246, z = (0.375 − 0.125) / 0.0968246 = 2.5819889,
    // p = erfc(2.5819889/√2) = 0.0098233 < 0.05 and the rate went up: a regression.
    let comparisons = report["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 1);
    let comparison = &comparisons[0];
    assert_eq!(comparison["old"]["version"], "answer@v1");
    assert_eq!(comparison["new"]["version"], "answer@v2");
    assert_eq!(comparison["test"], "two_proportion_z");
    close(number(&comparison["z"]), 2.581_988_9, 1e-6, "z");
    close(number(&comparison["p_value"]), 0.009_823_3, 1e-6, "p");
    assert_eq!(comparison["regression"], true);
    // Category mix: v1 is all irrelevant_context (1.0); v2 is 3/15 = 0.2 irrelevant_context
    // and 12/15 = 0.8 hallucination. TVD = (|1 − 0.2| + |0 − 0.8|) / 2 = 0.8 >= 0.2, both
    // sides have >= 5 failures: shifted. Chi-square on [[5, 0], [3, 12]]: expected
    // [[2, 3], [6, 9]], statistic = 9/2 + 9/3 + 9/6 + 9/9 = 10, df 1, p = erfc(√5) = 0.0015654.
    close(number(&comparison["category_tvd"]), 0.8, 1e-12, "tvd");
    assert_eq!(comparison["mix_shift"], true);
    close(
        number(&comparison["category_chi_square"]),
        10.0,
        1e-9,
        "chi-square",
    );
    assert_eq!(comparison["category_chi_square_df"], 1);
    close(
        number(&comparison["category_p_value"]),
        0.001_565_4,
        1e-6,
        "mix p",
    );

    // Chunks: prior Beta(0.25·10, 0.75·10) = Beta(2.5, 7.5), at least 5 responses.
    // kb-bad: 8 of 10 failed: (8 + 2.5) / (10 + 10) = 0.525, lift 0.525 / 0.25 = 2.1.
    // kb-common: 20 of 80: (20 + 2.5) / (80 + 10) = 0.25, lift 1.0.
    // kb-good: 0 of 10: (0 + 2.5) / (10 + 10) = 0.125, lift 0.5.
    // kb-rare: 2 responses, under the minimum: not listed.
    close(number(&report["prior_alpha"]), 2.5, 1e-12, "alpha");
    close(number(&report["prior_beta"]), 7.5, 1e-12, "beta");
    let chunks = report["chunks"].as_array().unwrap();
    let listed: Vec<(&str, f64, f64)> = chunks
        .iter()
        .map(|chunk| {
            (
                chunk["chunk_id"].as_str().unwrap(),
                number(&chunk["smoothed_rate"]),
                number(&chunk["lift"]),
            )
        })
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for ((chunk, smoothed, lift), (want_chunk, want_smoothed, want_lift)) in listed.iter().zip([
        ("kb-bad", 0.525, 2.1),
        ("kb-common", 0.25, 1.0),
        ("kb-good", 0.125, 0.5),
    ]) {
        assert_eq!(*chunk, want_chunk);
        close(*smoothed, want_smoothed, 1e-12, chunk);
        close(*lift, want_lift, 1e-12, chunk);
    }

    // Signals: 20 thumbs-down, all negative, on 20 records.
    let signals = report["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["signal"], "thumbs_down");
    assert_eq!(signals[0]["feedback"], 20);
    assert_eq!(signals[0]["negative"], 20);
    assert_eq!(signals[0]["failure_records"], 20);

    // One day, 20 / 80.
    let daily = report["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0]["responses"], 80);
    close(number(&daily[0]["failure_rate"]), 0.25, 1e-12, "daily");

    // --compare picks the versions; the other way round it is an improvement.
    closedloop(&[
        "report",
        "--store-path",
        store.to_str().unwrap(),
        "--compare",
        "answer@v2",
        "answer@v1",
        "--json",
        json_path.to_str().unwrap(),
    ])
    .await
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["comparisons"][0]["old"]["version"], "answer@v2");
    assert_eq!(report["comparisons"][0]["regression"], false);
    assert!(closedloop(&[
        "report",
        "--store-path",
        store.to_str().unwrap(),
        "--compare",
        "answer@v2",
        "answer@v9",
    ])
    .await
    .is_err());
}

/// The review sample against the signals, on 20 responses all drawn into today's sample and
/// labelled by hand:
///
/// | responses | feedback                  | labelled bad      | labelled good     |
/// |-----------|---------------------------|-------------------|-------------------|
/// | 0         | thumbs_down and rephrase  | 0                 |                   |
/// | 1-5       | thumbs_down               | 1-4               | 5                 |
/// | 6-9       | copy                      | 6                 | 7-9               |
/// | 10-13     | rephrase                  | 10, 11            | 12, 13            |
/// | 14-19     | none                      | 14-16             | 17-19             |
///
/// 11 bad, 9 good. thumbs_down flags 0-5: precision 5/6, recall 5/11. rephrase flags 0 and
/// 10-13: precision 3/5, recall 3/11. copy (a positive signal, flagging by being there) flags
/// 6-9: precision 1/4, recall 1/11. Any negative signal flags 0-5 and 10-13: precision 7/10,
/// recall 7/11; the silent failures are 6 and 14-16: 4/11.
#[tokio::test(flavor = "multi_thread")]
async fn calibration_matches_the_hand_computed_fixture() {
    use closedloop_commands::review::{self, Label, ReviewConfig, ReviewFilter};
    use closedloop_commands::triage::{NotifyConfig, TriageConfig};
    use closedloop_receiver::DirectSettings;
    use closedloop_store::ContentRetention;

    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    let responses: Vec<Ids> = (0..20).map(|_| ids()).collect();
    let mut spans = Vec::new();
    for (index, &response) in responses.iter().enumerate() {
        let mut span = generation_span(
            response,
            &Generation {
                template_id: "answer",
                template_version: "v1",
                ..Generation::default()
            },
        );
        span.attributes.retain(|kv| kv.key != attr::SESSION_ID);
        span.attributes.push(text(
            attr::SESSION_ID,
            &format!("s-{}", hex::encode(response.0)),
        ));
        spans.push(span);
        let signals: &[&str] = match index {
            0 => &["thumbs_down", "rephrase"],
            1..=5 => &["thumbs_down"],
            6..=9 => &["copy"],
            10..=13 => &["rephrase"],
            _ => &[],
        };
        for signal in signals {
            spans.push(feedback_span(
                child(response),
                Some(response),
                signal,
                vec![],
            ));
        }
    }
    pipeline.ingest(request(spans)).await.unwrap();
    pipeline.shutdown().await.unwrap();

    let store = dir.path().join("closedloop.db");
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400;
    let sample = ReviewConfig {
        daily_sample_size: 20,
        ..ReviewConfig::default()
    };
    let outcome = review::sample_day(
        &mut command_store(&store),
        &sample,
        ContentRetention::default(),
        today,
        Some(1),
    )
    .unwrap();
    assert_eq!((outcome.population, outcome.sampled), (20, 20));
    let settings = DirectSettings::new(
        true,
        true,
        &TriageConfig::default(),
        &NotifyConfig::default(),
    );
    let bad = [0, 1, 2, 3, 4, 6, 10, 11, 14, 15, 16];
    for item in review::list(&mut command_store(&store), &ReviewFilter::default()).unwrap() {
        let index = responses
            .iter()
            .position(|response| hex::encode(response.0) == item.trace_id)
            .unwrap();
        review::label(
            &mut command_store(&store),
            &settings,
            item.id,
            &Label::new(!bad.contains(&index)),
        )
        .unwrap();
    }

    let json_path = dir.path().join("report.json");
    closedloop(&[
        "report",
        "--store-path",
        store.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ])
    .await
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let number = |value: &serde_json::Value| value.as_f64().unwrap();
    let calibration = &report["calibration"];
    assert_eq!(calibration["labels"], 20);
    assert_eq!(calibration["labelled_days"], 1);

    // Wilson intervals (z = 1.959964) of each fraction, computed by hand.
    let interval = |value: &serde_json::Value, rate: f64, low: f64, high: f64, what: &str| {
        close(number(&value["rate"]), rate, 1e-12, what);
        close(number(&value["low"]), low, 1e-6, what);
        close(number(&value["high"]), high, 1e-6, what);
    };
    let signals = calibration["signals"].as_array().unwrap();
    let find = |name: &str| {
        signals
            .iter()
            .find(|signal| signal["signal"] == name)
            .unwrap_or_else(|| panic!("{name} not in {signals:?}"))
    };
    assert_eq!(signals.len(), 3, "{signals:?}");
    let thumbs = find("thumbs_down");
    assert_eq!(thumbs["origin"], "application");
    interval(
        &thumbs["precision"],
        5.0 / 6.0,
        0.436_497_2,
        0.969_946_6,
        "thumbs precision",
    );
    interval(
        &thumbs["recall"],
        5.0 / 11.0,
        0.212_712_7,
        0.719_908_5,
        "thumbs recall",
    );
    let rephrase = find("rephrase");
    interval(
        &rephrase["precision"],
        0.6,
        0.230_724_3,
        0.882_379_2,
        "rephrase precision",
    );
    interval(
        &rephrase["recall"],
        3.0 / 11.0,
        0.097_460_6,
        0.565_645_3,
        "rephrase recall",
    );
    let copy = find("copy");
    assert_eq!(copy["positive"], true);
    interval(
        &copy["precision"],
        0.25,
        0.045_587_3,
        0.699_358_2,
        "copy precision",
    );
    interval(
        &copy["recall"],
        1.0 / 11.0,
        0.016_232_2,
        0.377_358_4,
        "copy recall",
    );
    let any = &calibration["any_signal"];
    assert_eq!(
        (any["bad_flagged"].as_u64(), any["bad_unflagged"].as_u64()),
        (Some(7), Some(4))
    );
    assert_eq!(
        (any["good_flagged"].as_u64(), any["good_unflagged"].as_u64()),
        (Some(3), Some(6))
    );
    interval(
        &calibration["silent_failure_rate"],
        4.0 / 11.0,
        0.151_664_7,
        0.646_198_8,
        "silent failures",
    );

    // The estimates. Every response is labelled, so the correction f̄_N − f̄_n is 0 and the
    // prediction-powered estimate is the labels' 11/20. With n = N = 20 and the factor
    // n/(n − 1): Var(f) = 0.25·20/19, Cov(y, f) = (7/20 − 0.55·0.5)·20/19 = 0.075·20/19,
    // λ = Cov / ((1 + n/N)·Var(f)) = 0.075 / 0.5 = 0.15; Var(y − λf) = (0.2475 − 2·0.15·0.075
    // + 0.15²·0.25)·20/19 = 0.2427632, variance = 0.15²·0.25/20 + 0.2427632/20 = 0.0124194.
    // Labels for ±2%: ⌈1.959964²·0.0124194·20 / 0.02²⌉ = 2386, so 2366 more.
    let estimates = calibration["estimates"].as_array().unwrap();
    let all = &estimates[0];
    assert_eq!(all["dimension"], "all");
    let version = estimates
        .iter()
        .find(|estimate| estimate["dimension"] == "template_version")
        .unwrap();
    assert_eq!(version["value"], "answer@v1");
    for estimate in [all, version] {
        assert_eq!(estimate["responses"], 20);
        assert_eq!(estimate["signalled"], 10);
        close(number(&estimate["signal_rate"]), 0.5, 1e-12, "signal rate");
        interval(
            &estimate["labels_only"],
            0.55,
            0.342_085_3,
            0.741_802_1,
            "labels only",
        );
        let ppi = &estimate["prediction_powered"];
        close(number(&ppi["estimate"]), 0.55, 1e-12, "ppi");
        close(number(&ppi["lambda"]), 0.15, 1e-12, "lambda");
        close(number(&ppi["variance"]), 0.012_419_408, 1e-8, "variance");
        assert_eq!(estimate["more_labels_needed"], 2366);
    }
}
