//! Review sampling: the reservoir is uniform, a day's sample is reproducible from its recorded
//! seed, and a label is feedback that goes through the same join as any other.

mod support;

use std::time::Duration;

use closedloop_commands::evalset::{self, EvalsetQuery};
use closedloop_commands::report::stats::chi_square_sf;
use closedloop_commands::review::{self, Label, ReviewConfig, ReviewError, ReviewFilter};
use closedloop_commands::triage::{self, ListFilter, NotifyConfig, TriageConfig};
use closedloop_receiver::{DirectSettings, Pipeline};
use closedloop_semconv::attribute as attr;
use closedloop_store::ContentRetention;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn reservoir_is_uniform_over_positions() {
    // 4000 days of 40 responses, 5 sampled a day, one seeded generator: every position is
    // expected 4000 · 5 / 40 = 500 times. Chi-square with 39 degrees of freedom.
    const DAYS: usize = 4_000;
    const STREAM: usize = 40;
    const SIZE: usize = 5;
    let mut rng = review::SplitMix64::new(20_261_123);
    let mut counts = [0u64; STREAM];
    for _ in 0..DAYS {
        let sample = review::reservoir_sample(0..STREAM, SIZE, &mut rng);
        assert_eq!(sample.len(), SIZE);
        let mut distinct = sample.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), SIZE, "no response twice");
        for position in sample {
            counts[position] += 1;
        }
    }
    let expected = (DAYS * SIZE) as f64 / STREAM as f64;
    let statistic: f64 = counts
        .iter()
        .map(|&count| (count as f64 - expected).powi(2) / expected)
        .sum();
    let p = chi_square_sf(statistic, (STREAM - 1) as f64);
    assert!(
        p > 0.01,
        "chi-square {statistic:.2}, p = {p:.4}: {counts:?}"
    );

    // A stream shorter than the sample is taken whole; the same seed draws the same sample.
    assert_eq!(
        review::reservoir_sample(0..3, 5, &mut review::SplitMix64::new(1)),
        vec![0, 1, 2]
    );
    let draw = |seed| review::reservoir_sample(0..1_000, 10, &mut review::SplitMix64::new(seed));
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(86_400)
}

/// Starts a pipeline over `dir` and ingests `count` responses in order; returns their ids.
async fn store_with_responses(
    dir: &std::path::Path,
    sink: Option<&Sink>,
    count: usize,
) -> (Pipeline, Vec<Ids>) {
    let mut pipeline_config = config(dir, sink.map(Sink::endpoint));
    pipeline_config.triage = TriageConfig {
        default_owner: Some("reviewers".into()),
        ..Default::default()
    };
    let pipeline = Pipeline::start(pipeline_config).await.unwrap();
    let responses: Vec<Ids> = (0..count).map(|_| ids()).collect();
    for chunk in responses.chunks(10) {
        let spans = chunk
            .iter()
            .map(|&response| {
                let mut span = generation_span(response, &Generation::default());
                // One session per response: no implicit signals between them.
                span.attributes.retain(|kv| kv.key != attr::SESSION_ID);
                span.attributes.push(text(
                    attr::SESSION_ID,
                    &format!("session-{}", hex::encode(response.0)),
                ));
                span
            })
            .collect();
        pipeline.ingest(request(spans)).await.unwrap();
    }
    (pipeline, responses)
}

#[tokio::test(flavor = "multi_thread")]
async fn daily_sample_is_reproducible_and_labels_are_feedback() {
    let sink = Sink::http().await;
    let config_10 = ReviewConfig {
        daily_sample_size: 10,
        ..Default::default()
    };
    // Two stores with the same responses in the same order, sampled with the same seed, pick
    // the same positions.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pipeline, responses) = store_with_responses(dir_a.path(), Some(&sink), 30).await;
    let (other, other_responses) = store_with_responses(dir_b.path(), None, 30).await;
    other.shutdown().await.unwrap();
    let store = dir_a.path().join("closedloop.db");
    let other_store = dir_b.path().join("closedloop.db");
    let outcome = review::sample_day(
        &mut command_store(&store),
        &config_10,
        ContentRetention::default(),
        today(),
        Some(42),
    )
    .unwrap();
    assert_eq!(
        (outcome.population, outcome.sampled, outcome.seed),
        (30, 10, 42)
    );
    review::sample_day(
        &mut command_store(&other_store),
        &config_10,
        ContentRetention::default(),
        today(),
        Some(42),
    )
    .unwrap();
    let positions = |store: &std::path::Path, responses: &[Ids]| -> Vec<usize> {
        review::list(&mut command_store(store), &ReviewFilter::default())
            .unwrap()
            .iter()
            .map(|item| {
                responses
                    .iter()
                    .position(|response| hex::encode(response.0) == item.trace_id)
                    .unwrap()
            })
            .collect()
    };
    let picked = positions(&store, &responses);
    assert_eq!(picked.len(), 10);
    assert_eq!(picked, positions(&other_store, &other_responses));
    // A day is sampled once; the error names the recorded seed.
    match review::sample_day(
        &mut command_store(&store),
        &config_10,
        ContentRetention::default(),
        today(),
        None,
    ) {
        Err(ReviewError::AlreadySampled { seed, .. }) => assert_eq!(seed, 42),
        other => panic!("expected AlreadySampled, got {other:?}"),
    }

    // Label one item bad (with the expected answer) and one good, while the receiver runs.
    let items = review::list(&mut command_store(&store), &ReviewFilter::default()).unwrap();
    let (bad, good) = (&items[0], &items[1]);
    assert_eq!(bad.template_id.as_deref(), Some("answer_with_context"));
    assert_eq!(bad.query, None, "content capture is off");
    let settings = DirectSettings::new(
        true,
        true,
        &TriageConfig {
            default_owner: Some("reviewers".into()),
            ..Default::default()
        },
        &NotifyConfig::default(),
    );
    let labelled = review::label(
        &mut command_store(&store),
        &settings,
        bad.id,
        &Label::new(false)
            .with_category(Some(attr::FailureCategory::WrongAnswer))
            .with_expected(Some("Settings > Security > Reset password.".into()))
            .with_note(Some("cites the old flow".into())),
    )
    .unwrap();
    assert_eq!(labelled.label.as_deref(), Some("bad"));
    let failure_id = labelled
        .failure_id
        .clone()
        .expect("a bad label makes a record");
    review::label(
        &mut command_store(&store),
        &settings,
        good.id,
        &Label::new(true),
    )
    .unwrap();
    assert_eq!(
        review::show(&mut command_store(&store), good.id)
            .unwrap()
            .failure_id,
        None
    );
    assert_eq!(
        review::list(
            &mut command_store(&store),
            &ReviewFilter {
                unlabelled: true,
                ..Default::default()
            }
        )
        .unwrap()
        .len(),
        8
    );

    // The record is exported like any other (the running receiver's exporter picks it up).
    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_ID),
        Some(failure_id.as_str())
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["label".to_owned()])
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("wrong_answer")
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_SEVERITY),
        Some("medium")
    );
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(record.str(attr::CLOSEDLOOP_TRIAGE_OWNER), Some("reviewers"));
    let records = triage::list(&mut command_store(&store), &ListFilter::new(0)).unwrap();
    assert_eq!(records.len(), 1);

    // And it is in the eval set, with the reviewer's label and expected answer.
    let cases = evalset::cases(
        &mut command_store(&store),
        &EvalsetQuery {
            labels: evalset::LabelFilter::Labelled,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(
        cases[0].expected.as_deref(),
        Some("Settings > Security > Reset password.")
    );
    assert_eq!(cases[0].metadata.label.as_deref(), Some("bad"));

    // The command line does the same.
    closedloop(&[
        "review",
        "--store-path",
        store.to_str().unwrap(),
        "label",
        &items[2].id.to_string(),
        "--bad",
    ])
    .await
    .unwrap();
    assert!(review::show(&mut command_store(&store), items[2].id)
        .unwrap()
        .failure_id
        .is_some());
    assert!(closedloop(&[
        "review",
        "--store-path",
        store.to_str().unwrap(),
        "label",
        "99999",
        "--good",
    ])
    .await
    .is_err());
    pipeline.shutdown().await.unwrap();
    sink.stop().await;
}
