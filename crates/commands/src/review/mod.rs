//! Review sampling: a uniform random sample of each day's responses for people to read, and
//! their labels fed back as reviewer feedback.
//!
//! For each UTC day the receiver draws a reservoir sample ([`reservoir_sample`], Algorithm R)
//! of `review.daily_sample_size` responses from that day's responses in arrival order, with a
//! seeded [`SplitMix64`] generator whose seed is recorded with the day, so the sample can be
//! drawn again identically. With `review.implicit_negative_share` above zero the sample is
//! stratified: that share of it is drawn from the responses that got an implicit negative
//! signal (rephrase, regenerate, abandon, a low edit), and the rest (plus any unused share)
//! from the others. The sample goes to a persisted review queue.
//!
//! A label ([`label`]) is stored as feedback with `closedloop.feedback.source` = `reviewer`,
//! signal `label`, value 1.0 (good) or 0.0 (bad), and goes through the same join and failure
//! rules as any other feedback: a bad label makes or updates the response's failure record,
//! exported like the others. The expected answer and note stay with the queue item.
//!
//! With `store.content_retention = "reviewed_or_failed"` (the default), drawing a day's
//! sample also deletes the captured content of that day's responses that have no failure
//! record and were not drawn, in the same transaction; with `review.daily_sample_size = 0`
//! [`auto_sample`] deletes it when the day would have been sampled. Content goes only once the
//! day is ripe (ended `review.sample_delay_secs` ago): a day sampled early by hand keeps it
//! until [`auto_sample`] goes over the day then.

mod config;

use closedloop_store::records::{
    ReviewCandidate, ReviewDay, ReviewLabel, ReviewLabelUpdate, ReviewRow, ReviewStratum,
};
use closedloop_store::{Connection, ContentRetention};

pub use config::ReviewConfig;

use crate::direct::{self, DirectSettings};
use crate::export::span::failure_id;
use crate::records::Feedback;
use crate::store::StoreError;
use crate::timefmt::{format_day, format_rfc3339, DAY_SECS};
use crate::vocab::{FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource};

/// SplitMix64 (Steele, Lea and Flood): a tiny, fast generator whose output for a seed never
/// changes with a dependency upgrade, which is what makes a recorded seed reproduce a sample.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (unbiased: draws below 2⁶⁴ mod `bound` are rejected);
    /// 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let draw = self.next_u64();
            if draw >= threshold {
                return draw % bound;
            }
        }
    }
}

/// A uniform random sample of `size` items of a stream of unknown length (Algorithm R):
/// the first `size` items fill the reservoir, and item `i` (0-based) then replaces a uniformly
/// chosen slot with probability `size / (i + 1)`. Every item ends up in the sample with
/// probability `size / n`. The result is in reservoir-slot order.
pub fn reservoir_sample<T>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    rng: &mut SplitMix64,
) -> Vec<T> {
    let mut reservoir = Vec::with_capacity(size.min(4_096));
    if size == 0 {
        return reservoir;
    }
    for (seen, item) in items.into_iter().enumerate() {
        if seen < size {
            reservoir.push(item);
        } else {
            let slot = rng.below(seen as u64 + 1) as usize;
            if slot < size {
                reservoir[slot] = item;
            }
        }
    }
    reservoir
}

/// The seed of `day` given the configured seed: distinct per day, fixed for a (seed, day).
fn day_seed(seed: u64, day: i64) -> u64 {
    SplitMix64::new(seed ^ (day as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// Why a review command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// No review item has this id.
    #[error("no review item {0}")]
    NotFound(i64),
    /// The day was sampled before (with the recorded seed).
    #[error("day {day} was already sampled (seed {seed})")]
    AlreadySampled {
        /// The day, `YYYY-MM-DD`.
        day: String,
        /// The seed recorded for it.
        seed: u64,
    },
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// What [`sample_day`] drew.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SampleOutcome {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The seed used (recorded with the day).
    pub seed: u64,
    /// The day's responses.
    pub population: u64,
    /// The responses added to the queue.
    pub sampled: usize,
    /// The captured content of the day's other responses deleted with the draw
    /// (`store.content_retention`).
    pub content_deleted: usize,
}

/// Draws the sample of `day` (days since the Unix epoch) into the queue, in one transaction
/// that first claims the day: with several receivers on one store, the one whose claim
/// succeeds draws, and the others find the day sampled. With `retention` on
/// [`ContentRetention::ReviewedOrFailed`], the same transaction deletes the content of the
/// day's responses that were not drawn and have no failure record; when the day has ended,
/// it is recorded as done.
#[allow(clippy::too_many_arguments)] // The draw's inputs, each one plain value.
fn draw(
    conn: &mut Connection,
    day: i64,
    size: usize,
    implicit_share: f64,
    seed: u64,
    drop_content: bool,
    now_s: i64,
) -> Result<SampleOutcome, ReviewError> {
    let day_text = format_day(day);
    let mut tx = conn.transaction()?;
    if let Some(seed) = tx.review_day_seed(&day_text)? {
        return Err(ReviewError::AlreadySampled {
            day: day_text,
            seed,
        });
    }
    let candidates = tx.review_candidates(day * DAY_SECS, (day + 1) * DAY_SECS)?;
    let population = candidates.len() as u64;
    let share = if implicit_share.is_finite() {
        implicit_share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let claimed = tx.claim_review_day(&ReviewDay {
        day: day_text.clone(),
        seed,
        sample_size: size as u64,
        implicit_share: share,
        population,
        created_s: now_s,
    })?;
    if !claimed {
        // Another receiver drew the day since the check above.
        let seed = tx.review_day_seed(&day_text)?.unwrap_or(seed);
        return Err(ReviewError::AlreadySampled {
            day: day_text,
            seed,
        });
    }
    let mut rng = SplitMix64::new(seed);
    let mut chosen: Vec<(ReviewCandidate, ReviewStratum)> = if share > 0.0 {
        let quota = (size as f64 * share).round() as usize;
        let (implicit, other): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|candidate| candidate.implicit);
        let mut chosen: Vec<_> = reservoir_sample(implicit, quota, &mut rng)
            .into_iter()
            .map(|candidate| (candidate, ReviewStratum::ImplicitNegative))
            .collect();
        let rest = size.saturating_sub(chosen.len());
        chosen.extend(
            reservoir_sample(other, rest, &mut rng)
                .into_iter()
                .map(|candidate| (candidate, ReviewStratum::Other)),
        );
        chosen
    } else {
        reservoir_sample(candidates, size, &mut rng)
            .into_iter()
            .map(|candidate| (candidate, ReviewStratum::Uniform))
            .collect()
    };
    chosen.sort_by_key(|(candidate, _)| candidate.row);
    let mut sampled = 0;
    for (candidate, stratum) in &chosen {
        if tx.queue_review_item(&day_text, candidate.key, *stratum, now_s)? {
            sampled += 1;
        }
    }
    let mut content_deleted = 0;
    if drop_content {
        content_deleted = tx.drop_unneeded_content(day * DAY_SECS, (day + 1) * DAY_SECS)?;
        tx.mark_content_dropped(&day_text, now_s, content_deleted)?;
    }
    tx.commit()?;
    Ok(SampleOutcome {
        day: day_text,
        seed,
        population,
        sampled,
        content_deleted,
    })
}

/// Samples the UTC day `day` (days since the Unix epoch) into the review queue: with `seed`
/// when given, else the configured seed (mixed with the day), else a random one; the seed is
/// recorded. A day is sampled once; sampling it again is an error naming the recorded seed.
/// The current day can be sampled too (from the responses received so far); the receiver's
/// [`auto_sample`] then leaves it be. `retention` is `store.content_retention`: see the
/// module docs.
pub fn sample_day(
    conn: &mut Connection,
    config: &ReviewConfig,
    retention: ContentRetention,
    day: i64,
    seed: Option<u64>,
) -> Result<SampleOutcome, ReviewError> {
    let seed = seed
        .or_else(|| config.seed.map(|seed| day_seed(seed, day)))
        .unwrap_or_else(rand::random);
    let now_s = crate::store::writer::unix_now_s();
    // Content goes only once the day is ripe (over, and `sample_delay_secs` past), as the
    // receiver's own sampling would do it: feedback on a day sampled early may still come.
    let ripe_s = (day + 1)
        .saturating_mul(DAY_SECS)
        .saturating_add(config.sample_delay_secs.min(i64::MAX as u64) as i64);
    draw(
        conn,
        day,
        config.daily_sample_size,
        config.implicit_negative_share,
        seed,
        retention == ContentRetention::ReviewedOrFailed && now_s >= ripe_s,
        now_s,
    )
}

/// How many days back the receiver samples days it missed (while it was stopped).
const CATCH_UP_DAYS: i64 = 7;

/// What [`auto_sample`] did for one completed day.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DayDone {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The responses queued, when its sample was drawn now.
    pub sampled: Option<usize>,
    /// The captured content deleted (`store.content_retention`), when that was done now.
    pub content_deleted: Option<usize>,
}

/// Samples the completed days (those that ended `review.sample_delay_secs` ago or more, up to
/// a week back) that have responses and no sample yet. With `retention` on
/// [`ContentRetention::ReviewedOrFailed`], the content of those days that no sample and no
/// failure record needs is deleted once per day: with the draw, or at the moment the day
/// would have been drawn when `review.daily_sample_size` is 0 or the day was sampled before
/// it ended. Returns what was done, per day.
pub fn auto_sample(
    conn: &mut Connection,
    config: &ReviewConfig,
    retention: ContentRetention,
    now_s: i64,
) -> Result<Vec<DayDone>, StoreError> {
    let drops = retention == ContentRetention::ReviewedOrFailed;
    if config.daily_sample_size == 0 && !drops {
        return Ok(Vec::new());
    }
    let ripe = now_s.saturating_sub(config.sample_delay_secs.min(i64::MAX as u64) as i64);
    // The last day that ended at or before `ripe`.
    let last = ripe.div_euclid(DAY_SECS) - 1;
    let mut done = Vec::new();
    for day in (last - CATCH_UP_DAYS + 1)..=last {
        let day_text = format_day(day);
        let (from_s, to_s) = (day * DAY_SECS, (day + 1) * DAY_SECS);
        let mut outcome = DayDone {
            day: day_text.clone(),
            sampled: None,
            content_deleted: None,
        };
        if config.daily_sample_size > 0
            && conn.review_day_seed(&day_text)?.is_none()
            && conn.has_responses_between(from_s, to_s)?
        {
            let seed = config
                .seed
                .map_or_else(rand::random, |seed| day_seed(seed, day));
            match draw(
                conn,
                day,
                config.daily_sample_size,
                config.implicit_negative_share,
                seed,
                drops,
                now_s,
            ) {
                Ok(drawn) => {
                    outcome.sampled = Some(drawn.sampled);
                    outcome.content_deleted = drops.then_some(drawn.content_deleted);
                }
                Err(ReviewError::AlreadySampled { .. }) => {}
                Err(ReviewError::Store(error)) => return Err(error),
                Err(_) => {}
            }
        }
        if drops && !conn.content_dropped(&day_text)? {
            let mut tx = conn.transaction()?;
            let deleted = tx.drop_unneeded_content(from_s, to_s)?;
            tx.mark_content_dropped(&day_text, now_s, deleted)?;
            tx.commit()?;
            outcome.content_deleted = Some(outcome.content_deleted.unwrap_or(0) + deleted);
        }
        if outcome.sampled.is_some() || outcome.content_deleted.is_some_and(|n| n > 0) {
            done.push(outcome);
        }
    }
    Ok(done)
}

/// One item of the review queue.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct ReviewItem {
    /// The queue id (`closedloop review show ID`).
    pub id: i64,
    /// The day it was sampled from, `YYYY-MM-DD`.
    pub day: String,
    /// `uniform`, or with stratification `implicit_negative` / `other`.
    pub stratum: String,
    /// The judged response's trace id, hex.
    pub trace_id: String,
    /// The judged response's span id, hex.
    pub span_id: String,
    /// When the response was received, RFC 3339 (when it is still stored).
    pub received: Option<String>,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `closedloop.context.chunk_ids`.
    pub chunk_ids: Option<Vec<String>>,
    /// `closedloop.query.fingerprint`.
    pub fingerprint: Option<String>,
    /// The query text, when the application captured it.
    pub query: Option<String>,
    /// The output messages, when the application captured them.
    pub output: Option<String>,
    /// `good` or `bad` once labelled.
    pub label: Option<String>,
    /// The category the reviewer gave.
    pub category: Option<String>,
    /// The expected answer the reviewer gave.
    pub expected: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// The response's failure record, if it has one.
    pub failure_id: Option<String>,
    /// Who gave the label, when known.
    pub reviewer: Option<String>,
}

/// Which items `closedloop review list` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only this day's sample (`YYYY-MM-DD`).
    pub day: Option<String>,
    /// Only items without a label.
    pub unlabelled: bool,
}

fn item(row: ReviewRow) -> ReviewItem {
    ReviewItem {
        id: row.id,
        day: row.day,
        stratum: row.stratum.as_str().to_owned(),
        failure_id: row.has_failure.then(|| failure_id(row.key)),
        trace_id: hex::encode(row.key.trace_id),
        span_id: hex::encode(row.key.span_id),
        received: row.received_s.map(format_rfc3339),
        template_id: row.template_id,
        template_version: row.template_version,
        model: row.model,
        chunk_ids: row.chunk_ids,
        fingerprint: row.fingerprint,
        query: row.query,
        output: row.output,
        label: row.label.map(|label| label.as_str().to_owned()),
        category: row.category.map(|category| category.as_str().to_owned()),
        expected: row.expected,
        note: row.note,
        reviewer: row.reviewer,
    }
}

/// The queue items matching `filter`, oldest first.
pub fn list(conn: &mut Connection, filter: &ReviewFilter) -> Result<Vec<ReviewItem>, ReviewError> {
    Ok(conn
        .review_items(filter.day.as_deref(), filter.unlabelled)?
        .into_iter()
        .map(item)
        .collect())
}

/// One queue item.
pub fn show(conn: &mut Connection, id: i64) -> Result<ReviewItem, ReviewError> {
    conn.review_item(id)?
        .map(item)
        .ok_or(ReviewError::NotFound(id))
}

/// A reviewer's label.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// Whether the response was good.
    pub good: bool,
    /// The failure category, for a bad response.
    pub category: Option<FailureCategory>,
    /// What the answer should have been.
    pub expected: Option<String>,
    /// A note for the team.
    pub note: Option<String>,
    /// Who gave the label (the console's signed-in user).
    pub reviewer: Option<String>,
}

impl Label {
    /// A good or bad label with no details.
    pub fn new(good: bool) -> Self {
        Self {
            good,
            category: None,
            expected: None,
            note: None,
            reviewer: None,
        }
    }

    /// With the failure category.
    pub fn with_category(mut self, category: Option<FailureCategory>) -> Self {
        self.category = category;
        self
    }

    /// With the expected answer.
    pub fn with_expected(mut self, expected: Option<String>) -> Self {
        self.expected = expected;
        self
    }

    /// With a note.
    pub fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// With who gave it.
    pub fn with_reviewer(mut self, reviewer: Option<String>) -> Self {
        self.reviewer = reviewer;
        self
    }
}

/// Labels queue item `id`: stores the reviewer feedback and joins it like any other feedback
/// (see the module docs), in one transaction. Returns the item as labelled.
pub fn label(
    conn: &mut Connection,
    settings: &DirectSettings,
    id: i64,
    label: &Label,
) -> Result<ReviewItem, ReviewError> {
    let found = direct::write(conn, settings, |w| {
        let Some(target) = w.conn.review_target(id)? else {
            return Ok(false);
        };
        let feedback_id = format!("fb_review_{}", hex::encode(rand::random::<[u8; 16]>()));
        let feedback = Feedback {
            feedback_id: feedback_id.clone(),
            span: None,
            target: Some(target),
            response_id: None,
            signal: FeedbackSignal::Label,
            kind: FeedbackKind::Explicit,
            value: Some(if label.good { 1.0 } else { 0.0 }),
            category: label.category,
            source: FeedbackSource::Reviewer,
            comment: None,
            session_id: None,
            user_id: None,
            time_unix_nano: crate::timefmt::now_unix_nano(),
        };
        // The response of a queued item is normally stored, so the join is immediate; if it
        // was pruned, the record is written unenriched at once rather than waiting.
        // The judged record's lock first, as a receiver's join takes it (shared store).
        w.conn.lock([closedloop_store::LockKey::span(&target)])?;
        direct::judge(w, settings, feedback)?;
        w.conn.set_review_label(
            id,
            &ReviewLabelUpdate {
                label: if label.good {
                    ReviewLabel::Good
                } else {
                    ReviewLabel::Bad
                },
                labelled_s: w.now_s,
                category: label.category,
                expected: label.expected.as_deref(),
                note: label.note.as_deref(),
                feedback_id: &feedback_id,
                reviewer: label.reviewer.as_deref(),
            },
        )?;
        Ok(true)
    })?;
    if !found {
        return Err(ReviewError::NotFound(id));
    }
    show(conn, id)
}
