//! A store filled in bulk with rows shaped like a busy receiver's, for benchmarks of the
//! pages and commands that read it (the console's render benchmark reads 1M responses and
//! 50K failure records). Not part of the interface the receiver uses.
//!
//! Every row is written by the store's own methods ([`Connection::insert_response`],
//! [`Connection::insert_feedback`], [`Connection::upsert_failure`], the triage and review
//! methods), so what the read paths see is what the receiver would have written; rows go in
//! transactions of [`Spec::batch`] responses. The rows are a function of [`Spec`] alone (a
//! fixed generator), so two stores filled with one spec hold the same rows.
//!
//! ```no_run
//! use closedloop_store::{bulk, Access, Connection, StoreConfig};
//! # fn run() -> closedloop_store::Result<()> {
//! let mut conn = Connection::open(&StoreConfig::default(), Access::Writer)?;
//! let filled = bulk::populate(&mut conn, &bulk::Spec::benchmark(1_767_225_600))?;
//! println!("{} responses, {} failure records", filled.responses, filled.failures);
//! # Ok(())
//! # }
//! ```

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
    TriageStatus,
};

use crate::connection::Connection;
use crate::error::Result;
use crate::records::{
    Content, FailureRow, Feedback, FeedbackState, Response, ReviewDay, ReviewLabel,
    ReviewLabelUpdate, ReviewStratum, SpanRef, Template,
};

const DAY_SECS: i64 = 86_400;

/// What [`populate`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Spec {
    /// Indexed responses, received evenly from the start of the first of `days` UTC days to
    /// `now_s` (today).
    pub responses: u64,
    /// Failure records, on responses spread evenly among them (at most one per response).
    pub failures: u64,
    /// The UTC days the responses are spread over, today (up to `now_s`) the last.
    pub days: u32,
    /// The end of the traffic, in Unix seconds ("now" for triage due times and today's
    /// review sample).
    pub now_s: i64,
    /// Items of today's review sample (fewer when today has fewer responses); a quarter of
    /// them are labelled.
    pub review_items: u64,
    /// Responses per transaction.
    pub batch: u64,
    /// Seeds the generator: another seed, other rows.
    pub seed: u64,
}

impl Spec {
    /// The console benchmark's store: 1M responses and 50K failure records over 30 days, the
    /// last today up to `now_s`, and a review sample of 100 for today.
    pub fn benchmark(now_s: i64) -> Self {
        Self {
            responses: 1_000_000,
            failures: 50_000,
            days: 30,
            now_s,
            review_items: 100,
            batch: 50_000,
            seed: 1,
        }
    }

    /// `responses` responses and `failures` failure records, otherwise as
    /// [`Spec::benchmark`].
    pub fn new(responses: u64, failures: u64, now_s: i64) -> Self {
        Self {
            responses,
            failures,
            ..Self::benchmark(now_s)
        }
    }
}

/// What [`populate`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Populated {
    /// Indexed responses.
    pub responses: u64,
    /// Failure records.
    pub failures: u64,
    /// Failure records by triage status, in [`TriageStatus::ALL`] order.
    pub by_status: Vec<(TriageStatus, u64)>,
    /// Failure records past their due time at `now_s` and still open or acknowledged.
    pub overdue: u64,
    /// Feedback rows (negative ones on the failed responses, thumbs-up on others, and the
    /// reviewers' labels).
    pub feedback: u64,
    /// Responses whose query and answer are stored: the failed and the sampled ones, as
    /// `store.content_retention = "reviewed_or_failed"` leaves a store.
    pub content: u64,
    /// Today's UTC day, `YYYY-MM-DD`, whose review sample was drawn.
    pub today: String,
    /// Items queued in today's review sample.
    pub review_items: u64,
    /// Of them, labelled.
    pub labelled: u64,
    /// Template versions (`template@version`) the responses carry.
    pub template_versions: Vec<String>,
}

/// Fills `conn`'s store with the rows `spec` describes (on top of what it holds; use an empty
/// store). See the module docs.
pub fn populate(conn: &mut Connection, spec: &Spec) -> Result<Populated> {
    let mut filled = Populated {
        by_status: TriageStatus::ALL
            .iter()
            .map(|&status| (status, 0))
            .collect(),
        template_versions: TEMPLATES
            .iter()
            .map(|(id, version, _)| format!("{id}@{version}"))
            .collect(),
        ..Populated::default()
    };
    let n = spec.responses.max(1);
    let today = spec.now_s.div_euclid(DAY_SECS);
    let first_s = (today - i64::from(spec.days.max(1)) + 1) * DAY_SECS;
    let span_s = (spec.now_s - first_s).max(1);
    let received = |i: u64| first_s + ((i as u128 * span_s as u128) / n as u128) as i64;
    filled.today = format_day(today);
    // Today's first response, and the evenly spaced ones of today drawn for review.
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = low + (high - low) / 2;
        if received(mid) < today * DAY_SECS {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let today_first = low;
    let today_count = n.saturating_sub(today_first).min(spec.responses);
    let review = spec.review_items.min(today_count);
    let reviewed = |i: u64| -> bool {
        if review == 0 || i < today_first {
            return false;
        }
        let offset = i - today_first;
        let step = today_count / review;
        offset.is_multiple_of(step) && offset / step < review
    };
    // Every `stride`-th response fails, starting half a stride in.
    let stride = spec
        .responses
        .checked_div(spec.failures)
        .map(|stride| stride.max(1));
    let failed = |i: u64| {
        stride.is_some_and(|stride| i % stride == stride / 2 && i / stride < spec.failures)
    };

    let mut tx = conn.transaction()?;
    let mut queue: Vec<SpanRef> = Vec::new();
    for i in 0..spec.responses {
        if i > 0 && i % spec.batch.max(1) == 0 {
            tx.commit()?;
            tx = conn.transaction()?;
        }
        let mut rng = Rng::new(spec.seed, i);
        let key = span_key(spec.seed, i);
        let received_s = received(i);
        let fails = failed(i);
        let sampled = reviewed(i);
        let template = &TEMPLATES[template_of(&mut rng, received_s - first_s, span_s)];
        let content = if fails || sampled {
            let query = QUERIES[rng.below(QUERIES.len() as u64) as usize];
            Content {
                input: None,
                query: Some(format!("{query} (#{i})")),
                output: Some(format!(
                    "Here is how: open Settings, then follow the steps in the article. ({i})"
                )),
            }
        } else {
            Content::default()
        };
        let chunks = 3 + rng.below(4);
        let chunk_ids: Vec<String> = (0..chunks)
            .map(|_| {
                let article = rng.below(CHUNK_ARTICLES);
                format!("kb/article-{article}#{}", rng.below(8))
            })
            .collect();
        let model = MODELS[rng.below(MODELS.len() as u64) as usize];
        let start_ns = (received_s as u64).saturating_mul(1_000_000_000);
        let response = Response {
            span: Some(key),
            start_unix_nano: start_ns.saturating_sub(1_500_000_000),
            end_unix_nano: start_ns,
            response_id: Some(format!("chatcmpl-{}", hex(&key.span_id))),
            template: Template {
                id: Some(template.0.into()),
                version: Some(template.1.into()),
                hash: Some(template.2.into()),
                text: None,
            },
            chunk_ids: Some(chunk_ids),
            model: Some(model.0.into()),
            provider: Some(model.1.into()),
            parameters: Some(r#"{"gen_ai.request.temperature":0.2}"#.into()),
            data_source: Some(DATA_SOURCES[rng.below(DATA_SOURCES.len() as u64) as usize].into()),
            index_version: Some(
                if received_s - first_s < span_s / 2 {
                    "idx-2026-10"
                } else {
                    "idx-2026-11"
                }
                .into(),
            ),
            session_id: Some(format!("sess-{}", i / 4)),
            user_id: Some(format!("user-{}", (i / 4) % 5_000)),
            fingerprint: Some(format!("fp-{}", hex(&key.trace_id[..8]))),
            semantic_fingerprint: None,
            content,
        };
        tx.insert_response(&response, key, received_s, true)?;
        filled.responses += 1;
        if !response.content.is_empty() {
            filled.content += 1;
        }
        if fails {
            fail(&mut tx, spec, &mut rng, key, received_s, i, &mut filled)?;
        } else if rng.below(20) == 0 {
            let feedback = feedback(key, i, 0, FeedbackSignal::ThumbsUp, received_s);
            store_feedback(&mut tx, &feedback, received_s + 30, FeedbackState::Stored)?;
            filled.feedback += 1;
        }
        if sampled {
            queue.push(key);
        }
    }

    if !queue.is_empty() {
        tx.claim_review_day(&ReviewDay {
            day: filled.today.clone(),
            seed: spec.seed,
            sample_size: spec.review_items,
            implicit_share: 0.0,
            population: today_count,
            created_s: spec.now_s,
        })?;
        for key in &queue {
            if tx.queue_review_item(&filled.today, *key, ReviewStratum::Uniform, spec.now_s)? {
                filled.review_items += 1;
            }
        }
        // A quarter of the sample labelled good, as a reviewer would through the join.
        let items = tx.review_items(Some(&filled.today), false)?;
        for item in items.iter().step_by(4) {
            let mut label = feedback(item.key, 0, 0, FeedbackSignal::Label, spec.now_s);
            label.feedback_id = format!("fb_review_{}", hex(&item.key.trace_id));
            label.source = FeedbackSource::Reviewer;
            label.value = Some(1.0);
            store_feedback(&mut tx, &label, spec.now_s, FeedbackState::Stored)?;
            filled.feedback += 1;
            tx.set_review_label(
                item.id,
                &ReviewLabelUpdate {
                    label: ReviewLabel::Good,
                    labelled_s: spec.now_s,
                    category: None,
                    expected: None,
                    note: Some("fine"),
                    feedback_id: &label.feedback_id,
                    reviewer: Some("reviewer"),
                },
            )?;
            filled.labelled += 1;
        }
    }
    tx.commit()?;
    Ok(filled)
}

/// The failure record of response `i` with its feedback (one to three negative signals, one
/// revision each), owner, due time and triage status (with a note for each change).
fn fail(
    conn: &mut Connection,
    spec: &Spec,
    rng: &mut Rng,
    key: SpanRef,
    received_s: i64,
    i: u64,
    filled: &mut Populated,
) -> Result<()> {
    let signals = 1 + rng.below(3);
    let mut names: Vec<&str> = Vec::new();
    let mut time_s = received_s;
    for revision in 1..=signals {
        let signal = NEGATIVE[rng.below(NEGATIVE.len() as u64) as usize];
        time_s += 20 + rng.below(600) as i64;
        let feedback = feedback(key, i, revision, signal, time_s);
        store_feedback(conn, &feedback, time_s, FeedbackState::Joined)?;
        filled.feedback += 1;
        if !names.contains(&signal.as_str()) {
            names.push(signal.as_str());
        }
    }
    let category = FailureCategory::ALL[rng.below(FailureCategory::ALL.len() as u64) as usize];
    let stage = match category {
        FailureCategory::IrrelevantContext | FailureCategory::MissingContext => {
            FailureStage::Retrieval
        }
        FailureCategory::Format | FailureCategory::Refusal => FailureStage::Prompt,
        FailureCategory::Other => FailureStage::Unknown,
        _ => FailureStage::Generation,
    };
    let severity = if category == FailureCategory::Harmful {
        FailureSeverity::Critical
    } else {
        FailureSeverity::ALL[rng.below(3) as usize]
    };
    let signals_text = names.join(",");
    conn.upsert_failure(&FailureRow {
        key,
        now_s: time_s,
        category,
        stage,
        severity,
        signals: &signals_text,
        feedback_count: signals as i64,
        revision: signals as i64,
        enriched: true,
        triage_status: TriageStatus::Open,
    })?;
    let owner = OWNERS[rng.below(OWNERS.len() as u64) as usize];
    let sla_s = [3_600, 86_400, 172_800, 259_200][rng.below(4) as usize];
    let due_s = owner.map(|_| received_s + sla_s);
    conn.set_triage_assignment(key, owner, due_s)?;
    let status = match rng.below(20) {
        0..=9 => TriageStatus::Open,
        10..=14 => TriageStatus::Acknowledged,
        15..=18 => TriageStatus::Resolved,
        _ => TriageStatus::WontFix,
    };
    if status != TriageStatus::Open {
        let changed_s = (time_s + 3_600).min(spec.now_s);
        if status != TriageStatus::Acknowledged {
            conn.set_triage_status(
                key,
                TriageStatus::Acknowledged,
                changed_s,
                Some("looking"),
                owner,
            )?;
        }
        conn.set_triage_status(key, status, changed_s, Some("triaged in bulk"), owner)?;
    }
    if let Some(entry) = filled.by_status.iter_mut().find(|(s, _)| *s == status) {
        entry.1 += 1;
    }
    let active = matches!(status, TriageStatus::Open | TriageStatus::Acknowledged);
    if active && due_s.is_some_and(|due| due < spec.now_s) {
        filled.overdue += 1;
    }
    filled.failures += 1;
    Ok(())
}

fn feedback(key: SpanRef, i: u64, n: u64, signal: FeedbackSignal, time_s: i64) -> Feedback {
    let implicit = matches!(
        signal,
        FeedbackSignal::Rephrase | FeedbackSignal::Regenerate | FeedbackSignal::Abandon
    );
    Feedback {
        feedback_id: format!("fb-{i}-{n}"),
        span: None,
        target: Some(key),
        response_id: None,
        signal,
        kind: if implicit {
            FeedbackKind::Implicit
        } else {
            FeedbackKind::Explicit
        },
        value: None,
        category: None,
        source: if implicit {
            FeedbackSource::Detector
        } else {
            FeedbackSource::User
        },
        comment: None,
        session_id: Some(format!("sess-{}", i / 4)),
        user_id: None,
        time_unix_nano: (time_s.max(0) as u64).saturating_mul(1_000_000_000),
    }
}

/// Stores `feedback` and attaches it to the response it names, as the join does.
fn store_feedback(
    conn: &mut Connection,
    feedback: &Feedback,
    received_s: i64,
    state: FeedbackState,
) -> Result<()> {
    if let (Some(row), Some(target)) = (
        conn.insert_feedback(feedback, received_s, state)?,
        feedback.target,
    ) {
        conn.set_feedback_target(row, target, state)?;
    }
    Ok(())
}

/// Template id, version and hash; later versions serve later traffic.
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("help_center_answer", "v1", "sha256:01"),
    ("help_center_answer", "v2", "sha256:02"),
    ("help_center_answer", "v3", "sha256:03"),
    ("help_center_answer", "v4", "sha256:04"),
    ("ticket_summary", "v1", "sha256:11"),
    ("ticket_summary", "v2", "sha256:12"),
];

/// Which template a response received `elapsed_s` into the traffic uses: a fifth are ticket
/// summaries (v2 in the second half), the rest help-center answers whose version moves
/// through the four in quarters, the last quarter split between v3 and v4 (an A/B test).
fn template_of(rng: &mut Rng, elapsed_s: i64, span_s: i64) -> usize {
    let quarter = (elapsed_s * 4 / span_s.max(1)).clamp(0, 3) as usize;
    if rng.below(5) == 0 {
        return if quarter < 2 { 4 } else { 5 };
    }
    match quarter {
        3 => 2 + rng.below(2) as usize,
        quarter => quarter,
    }
}

const MODELS: &[(&str, &str)] = &[
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("llama-3.1-70b", "meta"),
];

const DATA_SOURCES: &[&str] = &["help-center", "product-docs", "support-tickets"];

const OWNERS: &[Option<&str>] = &[
    Some("search-team"),
    Some("prompt-owners"),
    Some("safety-team"),
    Some("llm-oncall"),
    Some("llm-oncall"),
    None,
];

/// The articles chunk ids are drawn from (eight chunks each).
const CHUNK_ARTICLES: u64 = 2_000;

const NEGATIVE: &[FeedbackSignal] = &[
    FeedbackSignal::ThumbsDown,
    FeedbackSignal::ThumbsDown,
    FeedbackSignal::Rephrase,
    FeedbackSignal::Regenerate,
    FeedbackSignal::Abandon,
    FeedbackSignal::Report,
];

const QUERIES: &[&str] = &[
    "How do I reset my password?",
    "Can I export my invoices as CSV?",
    "Why was my card declined?",
    "How do I add a team member?",
    "Where do I change the billing address?",
    "Is there an API rate limit?",
];

/// The span of response `i`: distinct per (seed, i), never all zeros.
fn span_key(seed: u64, i: u64) -> SpanRef {
    let mut rng = Rng::new(seed ^ 0x5EED, i);
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&rng.next().to_be_bytes());
    // The index itself in the second half keeps keys distinct.
    trace_id[8..].copy_from_slice(&(i | 1 << 63).to_be_bytes());
    let span_id = (rng.next() | 1).to_be_bytes();
    SpanRef { trace_id, span_id }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// SplitMix64 seeded per row, so each row's values do not depend on the others.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, i: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (slightly biased for large bounds; fine for fixtures).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// `YYYY-MM-DD` of a day number (days since the Unix epoch), as the review queue names days.
fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_named_as_the_review_queue_names_them() {
        assert_eq!(super::format_day(0), "1970-01-01");
        assert_eq!(super::format_day(20_454), "2026-01-01");
        assert_eq!(super::format_day(11_016), "2000-02-29");
    }
}
