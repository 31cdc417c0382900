//! `store.content_retention`: drawing a day's review sample keeps the content of the drawn
//! and the failed responses and deletes the rest of the day's; `all` keeps everything.

use closedloop_commands::review::{self, ReviewConfig, ReviewFilter};
use closedloop_engine::timefmt::DAY_SECS;
use closedloop_engine::vocab::{FailureCategory, FailureSeverity, FailureStage, TriageStatus};
use closedloop_store::inspect::Param;
use closedloop_store::records::{Content, FailureRow, Response, SpanRef};
use closedloop_store::{Access, Connection, ContentRetention, StoreConfig};

/// A UTC day well in the past, so it has ended and ripened.
const DAY: i64 = 20_000;

fn store(dir: &tempfile::TempDir) -> Connection {
    let config = StoreConfig {
        path: dir.path().join("closedloop.db"),
        ..StoreConfig::default()
    };
    Connection::open(&config, Access::Writer).unwrap()
}

fn span(n: u8) -> SpanRef {
    SpanRef::new([n; 16], [n; 8]).unwrap()
}

/// Indexes responses `ns` received at `received_s`, each with a query and an answer.
fn responses(conn: &mut Connection, ns: impl IntoIterator<Item = u8>, received_s: i64) {
    for n in ns {
        let response = Response {
            span: Some(span(n)),
            content: Content {
                query: Some(format!("question {n}")),
                output: Some(format!("answer {n}")),
                ..Content::default()
            },
            ..Response::default()
        };
        assert!(conn
            .insert_response(&response, span(n), received_s, true)
            .unwrap());
    }
}

/// A failure record on response `n`, at `revision`.
fn fail(conn: &mut Connection, n: u8, revision: i64) {
    conn.upsert_failure(&FailureRow {
        key: span(n),
        now_s: DAY * DAY_SECS,
        category: FailureCategory::Hallucination,
        stage: FailureStage::Generation,
        severity: FailureSeverity::High,
        signals: "thumbs_down",
        feedback_count: 1,
        revision,
        enriched: true,
        triage_status: TriageStatus::Open,
    })
    .unwrap();
}

/// The responses (by their `n`) whose content is stored.
fn with_content(conn: &mut Connection) -> Vec<u8> {
    conn.inspect_rows(
        "SELECT r.trace_id FROM responses r JOIN response_content c ON c.response = r.id
         ORDER BY r.id",
        &[],
        1,
    )
    .unwrap()
    .into_iter()
    .map(|row| row[0].blob().unwrap()[0])
    .collect()
}

/// The responses (by their `n`) in the review queue.
fn sampled(conn: &mut Connection) -> Vec<u8> {
    let mut sampled: Vec<u8> = review::list(conn, &ReviewFilter::default())
        .unwrap()
        .iter()
        .map(|item| hex::decode(&item.trace_id).unwrap()[0])
        .collect();
    sampled.sort_unstable();
    sampled
}

fn config(size: usize) -> ReviewConfig {
    ReviewConfig {
        daily_sample_size: size,
        seed: Some(3),
        ..ReviewConfig::default()
    }
}

/// The moment the receiver samples `DAY`.
fn ripe() -> i64 {
    (DAY + 1) * DAY_SECS + ReviewConfig::default().sample_delay_secs as i64
}

#[test]
fn the_sample_and_the_failed_keep_their_content_and_the_rest_of_the_day_goes() {
    let dir = tempfile::tempdir().unwrap();
    let conn = &mut store(&dir);
    responses(conn, 1..=20, DAY * DAY_SECS + 60);
    // The next day, not sampled yet: untouched.
    responses(conn, [30], (DAY + 1) * DAY_SECS + 60);
    fail(conn, 2, 1);
    // A record from an earlier revision's feedback, revised since.
    fail(conn, 5, 3);

    // Not ripe yet: nothing is drawn and nothing deleted.
    let early = review::auto_sample(conn, &config(4), ContentRetention::default(), ripe() - 1);
    assert!(early.unwrap().is_empty());
    assert_eq!(with_content(conn).len(), 21);

    let done =
        review::auto_sample(conn, &config(4), ContentRetention::ReviewedOrFailed, ripe()).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].sampled, Some(4));
    let drawn = sampled(conn);
    assert_eq!(drawn.len(), 4);
    let mut expected: Vec<u8> = drawn.iter().copied().chain([2, 5]).collect();
    expected.sort_unstable();
    expected.dedup();
    let deleted = 20 - expected.len();
    assert_eq!(done[0].content_deleted, Some(deleted));
    expected.push(30);
    assert_eq!(with_content(conn), expected);
    // The reviewer still reads the query and the answer.
    for item in review::list(conn, &ReviewFilter::default()).unwrap() {
        let n = hex::decode(&item.trace_id).unwrap()[0];
        assert_eq!(item.query, Some(format!("question {n}")));
        assert_eq!(item.output, Some(format!("answer {n}")));
    }

    // Done once: the next check changes nothing.
    let again =
        review::auto_sample(conn, &config(4), ContentRetention::ReviewedOrFailed, ripe()).unwrap();
    assert!(again.is_empty());
    assert_eq!(with_content(conn), expected);
}

#[test]
fn with_all_every_response_keeps_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let conn = &mut store(&dir);
    responses(conn, 1..=20, DAY * DAY_SECS + 60);
    fail(conn, 2, 1);
    let done = review::auto_sample(conn, &config(4), ContentRetention::All, ripe()).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].sampled, done[0].content_deleted), (Some(4), None));
    assert_eq!(sampled(conn).len(), 4);
    assert_eq!(with_content(conn), (1..=20).collect::<Vec<_>>());
    // Sampling off and content kept: nothing to do at all.
    assert!(
        review::auto_sample(conn, &config(0), ContentRetention::All, ripe() + DAY_SECS)
            .unwrap()
            .is_empty()
    );
    assert_eq!(with_content(conn).len(), 20);
}

#[test]
fn with_sampling_off_the_content_goes_when_the_day_would_have_been_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let conn = &mut store(&dir);
    responses(conn, 1..=10, DAY * DAY_SECS + 60);
    fail(conn, 7, 2);
    assert!(
        review::auto_sample(conn, &config(0), ContentRetention::default(), ripe() - 1)
            .unwrap()
            .is_empty()
    );
    assert_eq!(with_content(conn).len(), 10);
    let done = review::auto_sample(conn, &config(0), ContentRetention::default(), ripe()).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].sampled, done[0].content_deleted), (None, Some(9)));
    assert_eq!(with_content(conn), vec![7]);
    assert!(sampled(conn).is_empty());
    let days = conn
        .inspect_int("SELECT count(*) FROM review_days", &[])
        .unwrap();
    assert_eq!(days, 0, "no sample is recorded when sampling is off");
}

/// The current day sampled by hand: its content stays until the day has ripened (feedback on
/// it may still come), then what no sample and no record needs goes, and the day is not drawn
/// again.
#[test]
fn a_day_sampled_before_it_ended_is_gone_over_again_once_it_ripens() {
    let dir = tempfile::tempdir().unwrap();
    let conn = &mut store(&dir);
    let now_s = closedloop_engine::store::writer::unix_now_s();
    let today = now_s.div_euclid(DAY_SECS);
    responses(conn, 1..=10, now_s);
    fail(conn, 1, 1);
    let outcome =
        review::sample_day(conn, &config(3), ContentRetention::default(), today, None).unwrap();
    assert_eq!((outcome.population, outcome.sampled), (10, 3));
    let mut kept: Vec<u8> = sampled(conn).into_iter().chain([1]).collect();
    kept.sort_unstable();
    kept.dedup();
    assert_eq!(outcome.content_deleted, 0);
    assert_eq!(with_content(conn), (1..=10).collect::<Vec<u8>>());

    // Later the same day.
    responses(conn, [11, 12], now_s);
    let ripe_today = (today + 1) * DAY_SECS + ReviewConfig::default().sample_delay_secs as i64;
    let done =
        review::auto_sample(conn, &config(3), ContentRetention::default(), ripe_today).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].sampled, done[0].content_deleted),
        (None, Some(12 - kept.len()))
    );
    assert_eq!(with_content(conn), kept);
    assert_eq!(sampled(conn).len(), 3);
    let seeds = conn
        .inspect_int(
            "SELECT count(*) FROM review_days WHERE seed = ?1",
            &[Param::Int(outcome.seed as i64)],
        )
        .unwrap();
    assert_eq!(seeds, 1);
}
