//! What the review sample says: true failure rates and how far each signal can be trusted.
//!
//! Reviewers label a uniform random sample of each day's responses (`closedloop review`).
//! Over the days of the window that have labels, for all responses and per template version,
//! model, data source and index version:
//!
//! - the **labels-only** rate: the share of the sample labelled bad, with its 95% Wilson
//!   interval; unbiased, wide;
//! - the **signal rate**: the share of all responses with negative feedback from anyone but a
//!   reviewer; narrow, biased (the unhappy click, most users never do);
//! - the **prediction-powered** rate ([`ppi_proportion`]):
//!   the signal on every response corrected by the sample; unbiased, and narrower than the
//!   labels alone as far as the signal predicts the labels;
//! - the labels still needed for an interval of the asked half-width.
//!
//! And per signal (each feedback signal, with the detectors' apart from the application's):
//! its precision (share of the labelled responses it flagged that reviewers call bad) and
//! recall (share of the reviewer-bad responses it flagged), and the **silent-failure rate**:
//! the share of reviewer-bad responses that got no negative signal at all.
//!
//! Only items of a uniform sample count: a stratified day (`review.implicit_share` above 0)
//! over-samples signalled responses, and its items are counted in
//! [`Calibration::stratified_labels`] and left out.

use std::collections::{BTreeMap, HashMap, HashSet};

use closedloop_stats::ppi::{labels_needed, ppi_proportion, LabelledSignals, PpiEstimate};
use closedloop_stats::rates::wilson;
use closedloop_store::records::{ReportResponse, ReviewLabel, ReviewStratum};
use closedloop_store::{Connection, StoreError};
use serde::Serialize;

use super::NO_TEMPLATE;
use crate::timefmt::DAY_SECS;
use crate::vocab::{FeedbackSignal, FeedbackSource};

/// The default half-width of the interval the labels needed are counted for: ±2 points.
pub const DEFAULT_TARGET_HALF_WIDTH: f64 = 0.02;

/// What responses are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Every response.
    All,
    /// `closedloop.prompt.template.id@closedloop.prompt.template.version`.
    TemplateVersion,
    /// `gen_ai.request.model`.
    Model,
    /// `gen_ai.data_source.id`.
    DataSource,
    /// `closedloop.retrieval.index.version`.
    IndexVersion,
}

impl Dimension {
    /// The name shown in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::TemplateVersion => "template version",
            Self::Model => "model",
            Self::DataSource => "data source",
            Self::IndexVersion => "index version",
        }
    }
}

/// A rate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// The point estimate.
    pub rate: f64,
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl Interval {
    fn of(successes: u64, n: u64) -> Option<Self> {
        (n > 0).then(|| {
            let (low, high) = wilson(successes, n);
            Self {
                rate: successes as f64 / n as f64,
                low,
                high,
            }
        })
    }

    pub(super) fn from_triple(triple: Option<(f64, f64, f64)>) -> Option<Self> {
        triple.map(|(rate, low, high)| Self { rate, low, high })
    }
}

/// The failure rate of one group of responses, three ways.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// What the group is taken over.
    pub dimension: Dimension,
    /// The group's value (`(none)` for responses without it).
    pub value: String,
    /// The group's responses on the days with labels.
    pub responses: u64,
    /// Of those, responses with negative feedback from anyone but a reviewer.
    pub signalled: u64,
    /// signalled / responses: the rate the signals alone give.
    pub signal_rate: f64,
    /// The group's labelled responses.
    pub labelled: u64,
    /// Of those, labelled bad.
    pub labelled_bad: u64,
    /// The share of the labels that are bad, with its Wilson interval.
    pub labels_only: Option<Interval>,
    /// The prediction-powered estimate.
    pub prediction_powered: Option<PpiEstimate>,
    /// The further labels an interval of ±`target_half_width` needs (0 when it is reached);
    /// without labels, the worst case (a rate of 50%).
    pub more_labels_needed: Option<u64>,
}

/// Who a signal came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalOrigin {
    /// The application or its user (`closedloop.feedback.source` `user` or `app`).
    Application,
    /// A closedloop detector (`detector`).
    Detector,
}

/// How one signal agrees with the reviewers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignalCalibration {
    /// `closedloop.feedback.signal`.
    pub signal: String,
    /// Who sent it.
    pub origin: SignalOrigin,
    /// Whether the signal speaks for the answer (`thumbs_up`, `copy`): it then flags a
    /// response by being there, and a good signal has a low precision; any other signal flags
    /// a response when it was negative.
    pub positive: bool,
    /// The labelled responses, and what the signal said of them.
    pub table: LabelledSignals,
    /// Share of the flagged labelled responses that reviewers call bad.
    pub precision: Option<Interval>,
    /// Share of the reviewer-bad responses it flagged.
    pub recall: Option<Interval>,
}

/// What the review sample says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// The half-width the labels needed are counted for.
    pub target_half_width: f64,
    /// The UTC days with labels (the estimates' population).
    pub labelled_days: u64,
    /// Labelled items of a uniform sample, counted.
    pub labels: u64,
    /// Labelled items of a stratified sample, left out.
    pub stratified_labels: u64,
    /// Per dimension and value: all first, then by dimension, then by value.
    pub estimates: Vec<Estimate>,
    /// Per signal, by signal then origin.
    pub signals: Vec<SignalCalibration>,
    /// Any negative signal at all, as one signal.
    pub any_signal: LabelledSignals,
    /// The share of reviewer-bad responses with no negative signal at all.
    pub silent_failure_rate: Option<Interval>,
}

#[derive(Default)]
struct GroupAcc {
    responses: u64,
    signalled: u64,
    sample: LabelledSignals,
}

/// Builds the [`Calibration`] over one pass of the report's responses.
pub(super) struct CalibrationAcc {
    labels: HashMap<i64, bool>,
    days: HashSet<i64>,
    stratified: u64,
    groups: HashMap<(Dimension, String), GroupAcc>,
    signals: BTreeMap<(&'static str, SignalOrigin), (bool, LabelledSignals)>,
    any: LabelledSignals,
}

fn is_positive(signal: FeedbackSignal) -> bool {
    matches!(signal, FeedbackSignal::ThumbsUp | FeedbackSignal::Copy)
}

fn origin(source: FeedbackSource) -> SignalOrigin {
    match source {
        FeedbackSource::Detector => SignalOrigin::Detector,
        _ => SignalOrigin::Application,
    }
}

fn add(table: &mut LabelledSignals, bad: bool, flagged: bool) {
    match (bad, flagged) {
        (true, true) => table.bad_flagged += 1,
        (true, false) => table.bad_unflagged += 1,
        (false, true) => table.good_flagged += 1,
        (false, false) => table.good_unflagged += 1,
    }
}

impl CalibrationAcc {
    /// Reads the labelled sample of the responses received at or after `since_s`, and
    /// calibrates each signal on it.
    pub(super) fn load(conn: &mut Connection, since_s: i64) -> Result<Self, StoreError> {
        let mut labels = HashMap::new();
        let mut days = HashSet::new();
        let mut stratified = 0;
        for reviewed in conn.reviewed_responses(since_s)? {
            if reviewed.stratum != ReviewStratum::Uniform {
                stratified += 1;
                continue;
            }
            labels.insert(reviewed.row, reviewed.label == ReviewLabel::Bad);
            days.insert(reviewed.received_s.div_euclid(DAY_SECS));
        }
        let mut flagged: HashMap<(FeedbackSignal, SignalOrigin), HashSet<i64>> = HashMap::new();
        for feedback in conn.reviewed_feedback(since_s)? {
            if !labels.contains_key(&feedback.row) {
                continue;
            }
            let rows = flagged
                .entry((feedback.signal, origin(feedback.source)))
                .or_default();
            if feedback.negative || is_positive(feedback.signal) {
                rows.insert(feedback.row);
            }
        }
        let signals = flagged
            .into_iter()
            .map(|(key, rows)| {
                let mut table = LabelledSignals::default();
                for (row, bad) in &labels {
                    add(&mut table, *bad, rows.contains(row));
                }
                ((key.0.as_str(), key.1), (is_positive(key.0), table))
            })
            .collect();
        Ok(Self {
            labels,
            days,
            stratified,
            groups: HashMap::new(),
            signals,
            any: LabelledSignals::default(),
        })
    }

    /// Counts one response of the window.
    pub(super) fn add(&mut self, response: &ReportResponse) {
        if !self
            .days
            .contains(&response.received_s.div_euclid(DAY_SECS))
        {
            return;
        }
        let label = self.labels.get(&response.row).copied();
        if let Some(bad) = label {
            add(&mut self.any, bad, response.signalled);
        }
        let template = match (&response.template_id, &response.template_version) {
            (None, None) => NO_TEMPLATE.to_owned(),
            (id, version) => format!(
                "{}@{}",
                id.as_deref().unwrap_or(NO_TEMPLATE),
                version.as_deref().unwrap_or(NO_TEMPLATE)
            ),
        };
        let or_none = |value: &Option<String>| value.clone().unwrap_or_else(|| NO_TEMPLATE.into());
        for key in [
            (Dimension::All, String::new()),
            (Dimension::TemplateVersion, template),
            (Dimension::Model, or_none(&response.model)),
            (Dimension::DataSource, or_none(&response.data_source)),
            (Dimension::IndexVersion, or_none(&response.index_version)),
        ] {
            let group = self.groups.entry(key).or_default();
            group.responses += 1;
            group.signalled += u64::from(response.signalled);
            if let Some(bad) = label {
                add(&mut group.sample, bad, response.signalled);
            }
        }
    }

    /// The calibration, with labels needed counted for ±`target_half_width`.
    pub(super) fn finish(self, target_half_width: f64) -> Calibration {
        // A dimension no response has a value of says nothing: leave it out.
        let informative: HashSet<Dimension> = self
            .groups
            .keys()
            .filter(|(_, value)| value != NO_TEMPLATE)
            .map(|(dimension, _)| *dimension)
            .collect();
        let mut estimates: Vec<Estimate> = self
            .groups
            .into_iter()
            .filter(|((dimension, _), _)| informative.contains(dimension))
            .map(|((dimension, value), group)| {
                estimate(dimension, value, &group, target_half_width)
            })
            .collect();
        estimates.sort_by(|a, b| (a.dimension, &a.value).cmp(&(b.dimension, &b.value)));
        let signals = self
            .signals
            .into_iter()
            .map(|((signal, origin), (positive, table))| SignalCalibration {
                signal: signal.to_owned(),
                origin,
                positive,
                precision: Interval::from_triple(table.precision()),
                recall: Interval::from_triple(table.recall()),
                table,
            })
            .collect();
        Calibration {
            target_half_width,
            labelled_days: self.days.len() as u64,
            labels: self.labels.len() as u64,
            stratified_labels: self.stratified,
            estimates,
            signals,
            any_signal: self.any,
            silent_failure_rate: Interval::of(self.any.bad_unflagged, self.any.bad()),
        }
    }
}

fn estimate(dimension: Dimension, value: String, group: &GroupAcc, half_width: f64) -> Estimate {
    let sample = &group.sample;
    let labelled = sample.labelled();
    let prediction_powered = ppi_proportion(group.signalled, group.responses, sample);
    // Each label's share of the variance: of the prediction-powered estimate where there is
    // one, else of a rate of 50% (the worst case).
    let per_label = match &prediction_powered {
        Some(ppi) => ppi.variance * labelled as f64,
        None => 0.25,
    };
    Estimate {
        dimension,
        value,
        responses: group.responses,
        signalled: group.signalled,
        signal_rate: if group.responses == 0 {
            0.0
        } else {
            group.signalled as f64 / group.responses as f64
        },
        labelled,
        labelled_bad: sample.bad(),
        labels_only: Interval::of(sample.bad(), labelled),
        prediction_powered,
        more_labels_needed: labels_needed(per_label, half_width)
            .map(|needed| needed.saturating_sub(labelled)),
    }
}
