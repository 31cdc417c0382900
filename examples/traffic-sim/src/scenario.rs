//! Simulated production traffic with a known truth: days of responses, each truly good or bad,
//! with the signals users and detectors would give it and the day's uniform review sample.
//!
//! The estimates and monitors of `closedloop report` and `[[monitors]]` are measured on this
//! traffic: the truth is known here, so a benchmark can say whether an interval covers it, how
//! often a monitor fires on stationary traffic and how long it takes to notice a change. A
//! [`Scenario`] is deterministic in its seed; [`Scenario::generate`] needs no receiver.
//!
//! The signal model is what makes feedback misleading in production (see [`SignalModel`]):
//! thumbs are self-selected (most users click nothing, unhappy ones click more), the rephrase
//! and abandon detectors are noisy (they miss rephrasings and flag follow-ups and satisfied
//! users who simply leave), and the rate of responses with a negative signal is therefore not
//! the true failure rate.
//!
//! # Example
//!
//! ```
//! use closedloop_example_traffic::scenario::Scenario;
//!
//! // The first template version's answers get worse on day 5 of 10.
//! let traffic = Scenario::regression(7, 10, 5).generate();
//! let true_rate = |days| {
//!     let version: Vec<_> = traffic.days(days).filter(|r| r.version == 0).collect();
//!     version.iter().filter(|r| r.bad).count() as f64 / version.len() as f64
//! };
//! assert!(true_rate(5..10) > true_rate(0..5) + 0.05);
//! ```

use std::collections::HashMap;
use std::ops::Range;

use closedloop_tracing::{fingerprint, Fingerprint};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use crate::queries::{Topic, ANSWERABLE, EMERGING, UNANSWERABLE};

/// The Unix time of the start of day 0: 2026-01-05T00:00:00Z, a Monday.
pub const EPOCH_S: i64 = 1_767_571_200;

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;

/// A user or detector signal on a response, named as closedloop stores it
/// (`closedloop.feedback.signal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// An explicit thumbs down.
    ThumbsDown,
    /// An explicit thumbs up.
    ThumbsUp,
    /// The rephrase detector: the next query asked the same again.
    Rephrase,
    /// The user asked for another answer.
    Regenerate,
    /// The abandon detector: the session ended right after the answer.
    Abandon,
    /// The user edited the answer before using it.
    Edit,
    /// The user copied the answer.
    Copy,
}

impl Signal {
    /// Every signal, in a fixed order.
    pub const ALL: [Signal; 7] = [
        Signal::ThumbsDown,
        Signal::ThumbsUp,
        Signal::Rephrase,
        Signal::Regenerate,
        Signal::Abandon,
        Signal::Edit,
        Signal::Copy,
    ];

    /// The stored name: `thumbs_down`, `thumbs_up`, `rephrase`, `regenerate`, `abandon`,
    /// `edit`, `copy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::ThumbsDown => "thumbs_down",
            Signal::ThumbsUp => "thumbs_up",
            Signal::Rephrase => "rephrase",
            Signal::Regenerate => "regenerate",
            Signal::Abandon => "abandon",
            Signal::Edit => "edit",
            Signal::Copy => "copy",
        }
    }

    /// Whether the signal makes a failure record (closedloop's failure rules): every signal
    /// but thumbs up and copy.
    pub const fn is_negative(self) -> bool {
        !matches!(self, Signal::ThumbsUp | Signal::Copy)
    }
}

/// How often a signal comes on a bad and on a good response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignalRates {
    /// P(signal | the response is bad).
    pub if_bad: f64,
    /// P(signal | the response is good).
    pub if_good: f64,
}

impl SignalRates {
    const fn new(if_bad: f64, if_good: f64) -> Self {
        Self { if_bad, if_good }
    }
}

/// Each signal's rates; signals come independently of each other given the truth.
///
/// The defaults ([`SignalModel::default`]) give a response with a negative signal with
/// probability 0.564 when it is bad and 0.052 when it is good, so the share of responses with
/// a failure record is 0.052 + 0.512 × the true failure rate: it overstates a low rate and
/// understates a high one.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalModel {
    /// Rates per signal, in [`Signal::ALL`] order.
    pub rates: [SignalRates; 7],
}

impl Default for SignalModel {
    fn default() -> Self {
        Self {
            rates: [
                // Self-selected: one unhappy user in five clicks; a happy one almost never.
                SignalRates::new(0.20, 0.005),
                SignalRates::new(0.01, 0.08),
                // Misses three rephrasings in four; flags follow-up questions.
                SignalRates::new(0.25, 0.02),
                SignalRates::new(0.10, 0.005),
                // Satisfied users leave too.
                SignalRates::new(0.15, 0.02),
                SignalRates::new(0.05, 0.003),
                SignalRates::new(0.05, 0.20),
            ],
        }
    }
}

impl SignalModel {
    /// The rates of `signal`.
    pub fn rates(&self, signal: Signal) -> SignalRates {
        // `Signal::ALL` lists the variants in declaration order.
        self.rates[signal as usize]
    }

    /// P(at least one negative signal | bad) and P(at least one negative signal | good).
    pub fn negative_rates(&self) -> SignalRates {
        let none = |rate: fn(&SignalRates) -> f64| {
            Signal::ALL
                .iter()
                .zip(&self.rates)
                .filter(|(signal, _)| signal.is_negative())
                .map(|(_, rates)| 1.0 - rate(rates))
                .product::<f64>()
        };
        SignalRates::new(1.0 - none(|r| r.if_bad), 1.0 - none(|r| r.if_good))
    }

    /// The expected share of responses with a negative signal at a true failure rate.
    pub fn signal_rate(&self, true_rate: f64) -> f64 {
        let negative = self.negative_rates();
        negative.if_good + (negative.if_bad - negative.if_good) * true_rate
    }

    /// The true failure rate whose expected signal-based rate is `signal_rate`.
    pub fn true_rate_for(&self, signal_rate: f64) -> f64 {
        let negative = self.negative_rates();
        ((signal_rate - negative.if_good) / (negative.if_bad - negative.if_good)).clamp(0.0, 1.0)
    }
}

/// A prompt template version and what serves it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionSpec {
    /// `closedloop.prompt.template.id`.
    pub template_id: String,
    /// `closedloop.prompt.template.version`.
    pub template_version: String,
    /// `gen_ai.request.model`.
    pub model: String,
    /// `gen_ai.data_source.id`.
    pub data_source: String,
    /// Its share of the traffic (shares are normalised).
    pub share: f64,
    /// Its true failure rate.
    pub failure_rate: f64,
}

/// A change in the traffic from a given day on.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// From `day`, version `version` (an index into [`Scenario::versions`]) fails at
    /// `failure_rate`.
    Regression {
        /// The first day of the change.
        day: u32,
        /// The version's index.
        version: usize,
        /// Its new true failure rate.
        failure_rate: f64,
    },
    /// From `day`, a `share` of the queries are about topics never asked before
    /// ([`crate::EMERGING`]), answered badly at `failure_rate`.
    NewTopic {
        /// The first day.
        day: u32,
        /// The share of queries on the new topics.
        share: f64,
        /// The true failure rate of their answers.
        failure_rate: f64,
    },
    /// From `day`, `signal` never comes (a broken thumbs button, a detector switched off).
    SilentSignal {
        /// The first day.
        day: u32,
        /// The signal that goes quiet.
        signal: Signal,
    },
}

/// Simulated traffic: who asks what, how often answers fail, how users react, what is reviewed.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The seed; the same scenario and seed give the same traffic.
    pub seed: u64,
    /// The number of days.
    pub days: u32,
    /// Responses a day, spread uniformly over the day.
    pub responses_per_day: u32,
    /// The template versions serving the traffic.
    pub versions: Vec<VersionSpec>,
    /// How signals come.
    pub signals: SignalModel,
    /// The size of each day's uniform review sample.
    pub review_per_day: u32,
    /// The share of queries that are one-off questions outside the topic bank.
    pub long_tail_share: f64,
    /// What changes, and when.
    pub events: Vec<Event>,
}

impl Scenario {
    /// Stationary traffic for `days`: 4,000 responses a day over three template versions
    /// (half, 30% and 20% of the traffic; true failure rates 9.4%, 20% and 5%, so the first
    /// has a 10% signal-based rate), two models and two data sources, 60 reviews a day, 10%
    /// one-off queries, the default [`SignalModel`].
    pub fn stationary(seed: u64, days: u32) -> Self {
        let signals = SignalModel::default();
        let version = |template_id: &str, version: &str, model: &str, source: &str, share, rate| {
            VersionSpec {
                template_id: template_id.to_owned(),
                template_version: version.to_owned(),
                model: model.to_owned(),
                data_source: source.to_owned(),
                share,
                failure_rate: rate,
            }
        };
        Self {
            seed,
            days,
            responses_per_day: 4_000,
            versions: vec![
                version(
                    "support-answer",
                    "3",
                    "gpt-4o-mini",
                    "help-center",
                    0.5,
                    signals.true_rate_for(0.10),
                ),
                version(
                    "billing-answer",
                    "2",
                    "gpt-4o-mini",
                    "billing-kb",
                    0.3,
                    0.20,
                ),
                version(
                    "account-answer",
                    "1",
                    "claude-haiku-4-5",
                    "help-center",
                    0.2,
                    0.05,
                ),
            ],
            signals,
            review_per_day: 60,
            long_tail_share: 0.10,
            events: Vec::new(),
        }
    }

    /// [`Scenario::stationary`] with a regression on `day`: the first version (2,000
    /// responses a day) goes from a 10% to a 15% signal-based failure rate (its true rate from
    /// 9.4% to 19.1% under the default signal model).
    pub fn regression(seed: u64, days: u32, day: u32) -> Self {
        let mut scenario = Self::stationary(seed, days);
        let failure_rate = scenario.signals.true_rate_for(0.15);
        scenario.events.push(Event::Regression {
            day,
            version: 0,
            failure_rate,
        });
        scenario
    }

    /// [`Scenario::stationary`] with queries on new topics from `day`, at `share` of the
    /// traffic, answered badly (true failure rate 40%).
    pub fn new_topic(seed: u64, days: u32, day: u32, share: f64) -> Self {
        let mut scenario = Self::stationary(seed, days);
        scenario.events.push(Event::NewTopic {
            day,
            share,
            failure_rate: 0.40,
        });
        scenario
    }

    /// [`Scenario::stationary`] whose thumbs-down button breaks on `day`.
    pub fn silent_thumbs(seed: u64, days: u32, day: u32) -> Self {
        let mut scenario = Self::stationary(seed, days);
        scenario.events.push(Event::SilentSignal {
            day,
            signal: Signal::ThumbsDown,
        });
        scenario
    }

    /// The traffic, in time order.
    pub fn generate(&self) -> Traffic {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut queries = QueryBank::default();
        let mut responses =
            Vec::with_capacity(self.days as usize * self.responses_per_day as usize);
        let total_share: f64 = self.versions.iter().map(|v| v.share).sum();
        for day in 0..self.days {
            let day_start = responses.len();
            let rates: Vec<f64> = (0..self.versions.len())
                .map(|version| self.failure_rate(day, version))
                .collect();
            let new_topic = self.new_topic_on(day);
            let silent: Vec<Signal> = self.silent_on(day);
            let mut offsets: Vec<i64> = (0..self.responses_per_day)
                .map(|_| rng.random_range(0..DAY_SECS))
                .collect();
            offsets.sort_unstable();
            for offset in offsets {
                let version = pick_version(&self.versions, total_share, rng.random());
                let (query, bad_rate) = match new_topic {
                    Some((share, rate)) if rng.random_bool(share) => {
                        (queries.topic_query(&mut rng, EMERGING, true), rate)
                    }
                    _ if rng.random_bool(self.long_tail_share) => {
                        (queries.one_off(&mut rng), rates[version])
                    }
                    _ => {
                        let answerable = rng.random_bool(0.8);
                        let bank = if answerable { ANSWERABLE } else { UNANSWERABLE };
                        (queries.topic_query(&mut rng, bank, false), rates[version])
                    }
                };
                let bad = rng.random_bool(bad_rate);
                let mut signals = Vec::new();
                for (signal, rates) in Signal::ALL.iter().zip(&self.signals.rates) {
                    let p = if bad { rates.if_bad } else { rates.if_good };
                    if rng.random_bool(p) && !silent.contains(signal) {
                        signals.push(*signal);
                    }
                }
                let failed = signals.iter().any(|signal| signal.is_negative());
                responses.push(SimResponse {
                    day,
                    at_s: EPOCH_S + i64::from(day) * DAY_SECS + offset,
                    version,
                    query,
                    bad,
                    signals,
                    failed,
                    reviewed: None,
                });
            }
            let day_len = responses.len() - day_start;
            let reviews = (self.review_per_day as usize).min(day_len);
            for index in sample(&mut rng, day_len, reviews) {
                let response = &mut responses[day_start + index];
                response.reviewed = Some(response.bad);
            }
        }
        Traffic {
            versions: self.versions.clone(),
            queries: queries.queries,
            responses,
        }
    }

    fn failure_rate(&self, day: u32, version: usize) -> f64 {
        self.events
            .iter()
            .rev()
            .find_map(|event| match event {
                Event::Regression {
                    day: from,
                    version: v,
                    failure_rate,
                } if *v == version && day >= *from => Some(*failure_rate),
                _ => None,
            })
            .unwrap_or(self.versions[version].failure_rate)
    }

    fn new_topic_on(&self, day: u32) -> Option<(f64, f64)> {
        self.events.iter().rev().find_map(|event| match event {
            Event::NewTopic {
                day: from,
                share,
                failure_rate,
            } if day >= *from => Some((*share, *failure_rate)),
            _ => None,
        })
    }

    fn silent_on(&self, day: u32) -> Vec<Signal> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::SilentSignal { day: from, signal } if day >= *from => Some(*signal),
                _ => None,
            })
            .collect()
    }

    /// The day the first event takes effect, if any.
    pub fn change_day(&self) -> Option<u32> {
        self.events
            .iter()
            .map(|event| match event {
                Event::Regression { day, .. }
                | Event::NewTopic { day, .. }
                | Event::SilentSignal { day, .. } => *day,
            })
            .min()
    }
}

fn pick_version(versions: &[VersionSpec], total_share: f64, draw: f64) -> usize {
    let mut left = draw * total_share;
    for (index, version) in versions.iter().enumerate() {
        if left < version.share {
            return index;
        }
        left -= version.share;
    }
    versions.len().saturating_sub(1)
}

/// One simulated response.
#[derive(Clone, Debug, PartialEq)]
pub struct SimResponse {
    /// The day, from 0.
    pub day: u32,
    /// When it was answered, Unix seconds.
    pub at_s: i64,
    /// Its template version, an index into [`Traffic::versions`].
    pub version: usize,
    /// Its query, an index into [`Traffic::queries`].
    pub query: usize,
    /// The truth: whether the answer was bad.
    pub bad: bool,
    /// The signals it got.
    pub signals: Vec<Signal>,
    /// Whether closedloop would record a failure for it: a negative signal came.
    pub failed: bool,
    /// The reviewer's label (`true` = bad) when it is in its day's uniform review sample.
    pub reviewed: Option<bool>,
}

/// A distinct query text of the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct SimQuery {
    /// The text.
    pub text: String,
    /// Its closedloop fingerprint (`mh64v3`), what the receiver sees without content.
    pub fingerprint: Fingerprint,
    /// The topic it is about; `None` for a one-off question.
    pub topic: Option<&'static str>,
    /// Whether its topic is one of the new topics of [`Event::NewTopic`].
    pub emerging: bool,
}

/// What [`Scenario::generate`] made.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// The template versions, as in the scenario.
    pub versions: Vec<VersionSpec>,
    /// The distinct queries.
    pub queries: Vec<SimQuery>,
    /// The responses, in time order.
    pub responses: Vec<SimResponse>,
}

impl Traffic {
    /// The responses of the days in `days`.
    pub fn days(&self, days: Range<u32>) -> impl Iterator<Item = &SimResponse> {
        self.responses
            .iter()
            .filter(move |response| days.contains(&response.day))
    }

    /// The query of a response.
    pub fn query(&self, response: &SimResponse) -> &SimQuery {
        &self.queries[response.query]
    }
}

/// Distinct query texts with their fingerprints, computed once each.
#[derive(Default)]
struct QueryBank {
    queries: Vec<SimQuery>,
    index: HashMap<String, usize>,
}

/// Light variations users add around the same question.
const PREFIXES: &[&str] = &["", "", "", "hi, ", "quick question: ", "hello, ", "hey "];
const SUFFIXES: &[&str] = &["", "", "", " thanks", " please", "??", " asap"];

/// The parts of one-off questions: combinations are rarely asked twice.
const ONE_OFF_OPENINGS: &[&str] = &[
    "how do I",
    "can I",
    "is it possible to",
    "what happens if I",
    "why can't I",
    "where do I",
];
const ONE_OFF_VERBS: &[&str] = &[
    "export",
    "archive",
    "rename",
    "share",
    "duplicate",
    "restore",
    "schedule",
    "print",
    "translate",
    "tag",
    "pin",
    "embed",
    "sync",
    "import",
    "lock",
    "hide",
];
const ONE_OFF_OBJECTS: &[&str] = &[
    "a board",
    "old invoices",
    "a custom field",
    "the audit log",
    "a recurring report",
    "guest comments",
    "a dashboard widget",
    "archived projects",
    "the activity feed",
    "a form template",
    "my saved filters",
    "team calendars",
    "the kanban view",
    "email digests",
];
const ONE_OFF_CONTEXTS: &[&str] = &[
    "",
    " from my phone",
    " for a client",
    " in bulk",
    " without admin rights",
    " after the trial ends",
    " on the free plan",
    " in another workspace",
];

impl QueryBank {
    fn intern(&mut self, text: String, topic: Option<&'static str>, emerging: bool) -> usize {
        if let Some(index) = self.index.get(&text) {
            return *index;
        }
        let index = self.queries.len();
        self.queries.push(SimQuery {
            fingerprint: fingerprint(&text),
            text: text.clone(),
            topic,
            emerging,
        });
        self.index.insert(text, index);
        index
    }

    fn topic_query(&mut self, rng: &mut StdRng, bank: &[Topic], emerging: bool) -> usize {
        let topic = &bank[rng.random_range(0..bank.len())];
        let phrasing = topic.phrasings[rng.random_range(0..topic.phrasings.len())];
        let prefix = PREFIXES[rng.random_range(0..PREFIXES.len())];
        let suffix = SUFFIXES[rng.random_range(0..SUFFIXES.len())];
        let mut text = format!("{prefix}{phrasing}{suffix}");
        if rng.random_bool(0.3) {
            text = text.to_lowercase();
        }
        self.intern(text, Some(topic.name), emerging)
    }

    fn one_off(&mut self, rng: &mut StdRng) -> usize {
        let pick =
            |rng: &mut StdRng, words: &[&'static str]| words[rng.random_range(0..words.len())];
        let text = format!(
            "{} {} {}{}?",
            pick(rng, ONE_OFF_OPENINGS),
            pick(rng, ONE_OFF_VERBS),
            pick(rng, ONE_OFF_OBJECTS),
            pick(rng, ONE_OFF_CONTEXTS)
        );
        self.intern(text, None, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(responses: impl Iterator<Item = bool>) -> f64 {
        let (n, hits) = responses.fold((0u32, 0u32), |(n, hits), hit| {
            (n + 1, hits + u32::from(hit))
        });
        f64::from(hits) / f64::from(n)
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic_and_another_seed_does_not() {
        let a = Scenario::stationary(1, 2).generate();
        assert_eq!(a, Scenario::stationary(1, 2).generate());
        assert_ne!(a.responses, Scenario::stationary(2, 2).generate().responses);
        assert_eq!(a.responses.len(), 8_000);
        assert!(a.responses.windows(2).all(|w| w[0].at_s <= w[1].at_s));
    }

    #[test]
    fn signal_rate_is_biased_and_the_review_sample_is_uniform() {
        let traffic = Scenario::stationary(3, 10).generate();
        let billing = || traffic.responses.iter().filter(|r| r.version == 1);
        let truth = rate(billing().map(|r| r.bad));
        let signal = rate(billing().map(|r| r.failed));
        assert!((truth - 0.20).abs() < 0.01, "{truth}");
        // 0.052 + 0.512 × 0.2 = 0.154: the signals understate a high rate.
        assert!((signal - 0.154).abs() < 0.01, "{signal}");
        let reviewed: Vec<bool> = traffic
            .responses
            .iter()
            .filter_map(|r| r.reviewed)
            .collect();
        assert_eq!(reviewed.len(), 600);
        let all = rate(traffic.responses.iter().map(|r| r.bad));
        assert!((rate(reviewed.into_iter()) - all).abs() < 0.05);
    }

    #[test]
    fn events_change_what_they_say_from_their_day() {
        let regression = Scenario::regression(4, 6, 3).generate();
        let first = |days| {
            rate(
                regression
                    .days(days)
                    .filter(|r| r.version == 0)
                    .map(|r| r.failed),
            )
        };
        assert!((first(0..3) - 0.10).abs() < 0.015, "{}", first(0..3));
        assert!((first(3..6) - 0.15).abs() < 0.015, "{}", first(3..6));

        let topic = Scenario::new_topic(5, 4, 2, 0.05).generate();
        let emerging = |days| rate(topic.days(days).map(|r| topic.query(r).emerging));
        assert_eq!(emerging(0..2), 0.0);
        assert!((emerging(2..4) - 0.05).abs() < 0.01);

        let silent = Scenario::silent_thumbs(6, 4, 2).generate();
        let thumbs = |days| {
            rate(
                silent
                    .days(days)
                    .map(|r| r.signals.contains(&Signal::ThumbsDown)),
            )
        };
        assert!(thumbs(0..2) > 0.015);
        assert_eq!(thumbs(2..4), 0.0);
    }

    #[test]
    fn the_signal_model_inverts() {
        let model = SignalModel::default();
        let negative = model.negative_rates();
        assert!(
            (negative.if_bad - 0.564).abs() < 0.001,
            "{}",
            negative.if_bad
        );
        assert!(
            (negative.if_good - 0.052).abs() < 0.001,
            "{}",
            negative.if_good
        );
        for rate in [0.0, 0.1, 0.37] {
            assert!((model.true_rate_for(model.signal_rate(rate)) - rate).abs() < 1e-12);
        }
    }
}
