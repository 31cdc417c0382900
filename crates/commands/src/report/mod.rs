//! `closedloop report`: did a template version make things better, or only different?
//!
//! Over the responses received in a window (and the failure records of those responses): the
//! failure rate of each prompt template version with its sample size and 95% Wilson interval;
//! for each template, its latest version against the previous one (by first appearance), or
//! any two versions asked for, with a significance test of the rate difference and a measure
//! of the shift in the category mix; the chunks whose presence in the context goes with the
//! most failures (lift over the baseline rate, smoothed); the feedback signals; and a daily
//! trend; what the labelled review sample says of the true failure rates and of each signal
//! ([`calibration`](Calibration)); and the monitors' alerts. The statistics are in
//! `closedloop_stats` (`rates` is re-exported as `stats`), with their choices documented there.

pub use closedloop_stats::rates as stats;

mod calibration;

pub use calibration::{
    Calibration, Dimension, Estimate, Interval, SignalCalibration, SignalOrigin,
    DEFAULT_TARGET_HALF_WIDTH,
};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use closedloop_store::{Connection, StoreError};
use serde::Serialize;

use crate::timefmt::{format_day, format_rfc3339, DAY_SECS};
use crate::vocab::FailureCategory;

/// The fewest responses a chunk needs to be ranked by failure lift.
pub const DEFAULT_MIN_CHUNK_RESPONSES: u64 = 5;

/// The most chunks listed.
pub const MAX_CHUNKS: usize = 20;

/// The label of responses without a template id or version.
pub const NO_TEMPLATE: &str = "(none)";

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
    /// A `--compare` version has no responses in the window.
    #[error("template version {0} has no responses in the window")]
    UnknownVersion(String),
}

/// A template version, `ID@VERSION`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TemplateVersion {
    /// `closedloop.prompt.template.id`.
    pub template_id: String,
    /// `closedloop.prompt.template.version`.
    pub template_version: String,
}

impl TemplateVersion {
    /// Parses `ID@VERSION`.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, version) = text.rsplit_once('@')?;
        (!id.is_empty() && !version.is_empty()).then(|| Self {
            template_id: id.to_owned(),
            template_version: version.to_owned(),
        })
    }
}

impl std::fmt::Display for TemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.template_id, self.template_version)
    }
}

/// What the report covers.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportQuery {
    /// Responses received at or after this Unix time.
    pub since_s: Option<i64>,
    /// Compare these two versions (older, newer) instead of each template's last two.
    pub compare: Option<(TemplateVersion, TemplateVersion)>,
    /// The fewest responses a chunk needs to be ranked.
    pub min_chunk_responses: u64,
    /// The half-width of the interval the labels needed are counted for.
    pub target_half_width: f64,
}

impl Default for ReportQuery {
    fn default() -> Self {
        Self {
            since_s: None,
            compare: None,
            min_chunk_responses: DEFAULT_MIN_CHUNK_RESPONSES,
            target_half_width: DEFAULT_TARGET_HALF_WIDTH,
        }
    }
}

/// The failure rate of one template version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionStats {
    /// The template version.
    #[serde(flatten)]
    pub version: TemplateVersion,
    /// Responses (the sample size).
    pub responses: u64,
    /// Responses with a failure record.
    pub failures: u64,
    /// failures / responses.
    pub failure_rate: f64,
    /// The 95% Wilson interval's lower bound.
    pub wilson_low: f64,
    /// The 95% Wilson interval's upper bound.
    pub wilson_high: f64,
    /// Failures by category.
    pub categories: BTreeMap<String, u64>,
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// The template version.
    pub version: String,
    /// Responses.
    pub responses: u64,
    /// Failures.
    pub failures: u64,
    /// failures / responses.
    pub failure_rate: f64,
}

/// A version against another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The older version.
    pub old: Side,
    /// The newer version.
    pub new: Side,
    /// The rate test.
    #[serde(flatten)]
    pub test: stats::RateComparison,
    /// Total variation distance between the two category mixes.
    pub category_tvd: f64,
    /// Chi-square statistic of the category mixes (homogeneity).
    pub category_chi_square: f64,
    /// Its degrees of freedom.
    pub category_chi_square_df: u32,
    /// Its p-value.
    pub category_p_value: f64,
    /// Whether the mix shifted (see [`stats::MIX_SHIFT_THRESHOLD`]).
    pub mix_shift: bool,
}

/// A chunk's failure lift.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChunkLift {
    /// The chunk id.
    pub chunk_id: String,
    /// Responses with the chunk in context.
    pub responses: u64,
    /// Of those, failures.
    pub failures: u64,
    /// failures / responses.
    pub failure_rate: f64,
    /// (failures + α) / (responses + α + β).
    pub smoothed_rate: f64,
    /// smoothed_rate / baseline_rate.
    pub lift: f64,
}

/// Feedback of one signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalStats {
    /// `closedloop.feedback.signal`.
    pub signal: String,
    /// Feedback items.
    pub feedback: u64,
    /// Of those, negative.
    pub negative: u64,
    /// Failure records carrying the signal.
    pub failure_records: u64,
}

/// One day of the trend.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Responses received.
    pub responses: u64,
    /// Of those, failures.
    pub failures: u64,
    /// failures / responses.
    pub failure_rate: f64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The window's start, RFC 3339.
    pub since: Option<String>,
    /// Responses in the window.
    pub responses: u64,
    /// Of those, responses with a failure record.
    pub failures: u64,
    /// Failure records created in the window whose response span is not stored (unenriched):
    /// counted nowhere else.
    pub unattributed_failures: u64,
    /// The failure rate of all responses: the chunk-lift baseline.
    pub baseline_rate: f64,
    /// Per template version, by template id then first appearance.
    pub versions: Vec<VersionStats>,
    /// Version comparisons.
    pub comparisons: Vec<Comparison>,
    /// The Beta prior's α of the chunk smoothing.
    pub prior_alpha: f64,
    /// The Beta prior's β of the chunk smoothing.
    pub prior_beta: f64,
    /// The fewest responses a ranked chunk has.
    pub min_chunk_responses: u64,
    /// The chunks with the highest lift, highest first (ties by id).
    pub chunks: Vec<ChunkLift>,
    /// Feedback by signal.
    pub signals: Vec<SignalStats>,
    /// Per day.
    pub daily: Vec<DayStats>,
    /// What the labelled review sample says: true failure rates, signal calibration.
    pub calibration: Calibration,
    /// The monitors' alerts fired in the window, newest first.
    pub alerts: Vec<AlertSummary>,
}

/// A monitor's alert, as the report lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertSummary {
    /// `alert_<id>`.
    pub id: String,
    /// The monitor and group, `kind/dimension/value`.
    pub monitor: String,
    /// When it fired, RFC 3339.
    pub fired: String,
    /// When it resolved, RFC 3339; `None` while it fires.
    pub resolved: Option<String>,
    /// The baseline rate.
    pub baseline_rate: f64,
    /// The rate over the excursion.
    pub observed_rate: f64,
    /// Its owner.
    pub owner: Option<String>,
    /// When it is due, RFC 3339.
    pub due: Option<String>,
    /// More about it: for a drift alert, the new queries of the last day and their largest
    /// clusters (sizes and example responses).
    pub detail: Option<serde_json::Value>,
}

fn rate(failures: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        failures as f64 / n as f64
    }
}

#[derive(Default)]
struct VersionAcc {
    first_row: i64,
    responses: u64,
    failures: u64,
    categories: BTreeMap<String, u64>,
}

/// The category order of the mix vectors: the registry's, then unknown values sorted.
fn category_keys(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> Vec<String> {
    let mut keys: Vec<String> = FailureCategory::ALL
        .iter()
        .map(|category| category.as_str().to_owned())
        .collect();
    for key in a.keys().chain(b.keys()) {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

fn compare(old: &VersionStats, new: &VersionStats) -> Comparison {
    let keys = category_keys(&old.categories, &new.categories);
    let counts = |stats: &VersionStats| -> Vec<u64> {
        keys.iter()
            .map(|key| stats.categories.get(key).copied().unwrap_or(0))
            .collect()
    };
    let (a, b) = (counts(old), counts(new));
    let tvd = stats::total_variation(&a, &b);
    let (chi_square, df, p_value) = stats::chi_square_homogeneity(&a, &b);
    let side = |stats: &VersionStats| Side {
        version: stats.version.to_string(),
        responses: stats.responses,
        failures: stats.failures,
        failure_rate: stats.failure_rate,
    };
    Comparison {
        old: side(old),
        new: side(new),
        test: stats::compare_rates(old.failures, old.responses, new.failures, new.responses),
        category_tvd: tvd,
        category_chi_square: chi_square,
        category_chi_square_df: df,
        category_p_value: p_value,
        mix_shift: tvd >= stats::MIX_SHIFT_THRESHOLD
            && old.failures.min(new.failures) >= stats::MIX_MIN_FAILURES,
    }
}

/// Builds the report from the store.
pub fn report(conn: &mut Connection, query: &ReportQuery) -> Result<Report, ReportError> {
    let since = query.since_s.unwrap_or(i64::MIN);
    let mut versions: HashMap<TemplateVersion, VersionAcc> = HashMap::new();
    let mut chunks: HashMap<String, (u64, u64)> = HashMap::new();
    let mut days: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    let (mut responses, mut failures) = (0u64, 0u64);
    let mut calibration = calibration::CalibrationAcc::load(conn, since)?;
    conn.report_responses(since, |response| {
        calibration.add(&response);
        let version = TemplateVersion {
            template_id: response.template_id.unwrap_or_else(|| NO_TEMPLATE.into()),
            template_version: response
                .template_version
                .unwrap_or_else(|| NO_TEMPLATE.into()),
        };
        let failed = u64::from(response.failure.is_some());
        responses += 1;
        failures += failed;
        let acc = versions.entry(version).or_insert_with(|| VersionAcc {
            first_row: response.row,
            ..VersionAcc::default()
        });
        acc.responses += 1;
        acc.failures += failed;
        if let Some(category) = response.failure {
            *acc.categories
                .entry(category.as_str().to_owned())
                .or_default() += 1;
        }
        let mut seen: Vec<&String> = Vec::with_capacity(response.chunk_ids.len());
        for chunk in &response.chunk_ids {
            // A chunk placed twice in one prompt counts once.
            if seen.contains(&chunk) {
                continue;
            }
            seen.push(chunk);
            let entry = chunks.entry(chunk.clone()).or_default();
            entry.0 += 1;
            entry.1 += failed;
        }
        let day = days
            .entry(response.received_s.div_euclid(DAY_SECS))
            .or_default();
        day.0 += 1;
        day.1 += failed;
    })?;
    let unattributed_failures = conn.unattributed_failures(since)?;

    let mut ordered: Vec<(TemplateVersion, VersionAcc)> = versions.into_iter().collect();
    ordered.sort_by(|(a, acc_a), (b, acc_b)| {
        (&a.template_id, acc_a.first_row).cmp(&(&b.template_id, acc_b.first_row))
    });
    let version_stats: Vec<VersionStats> = ordered
        .into_iter()
        .map(|(version, acc)| {
            let (wilson_low, wilson_high) = stats::wilson(acc.failures, acc.responses);
            VersionStats {
                version,
                responses: acc.responses,
                failures: acc.failures,
                failure_rate: rate(acc.failures, acc.responses),
                wilson_low,
                wilson_high,
                categories: acc.categories,
            }
        })
        .collect();

    let comparisons = match &query.compare {
        Some((old, new)) => {
            let find = |wanted: &TemplateVersion| {
                version_stats
                    .iter()
                    .find(|stats| &stats.version == wanted)
                    .ok_or_else(|| ReportError::UnknownVersion(wanted.to_string()))
            };
            vec![compare(find(old)?, find(new)?)]
        }
        None => {
            // Within a template the versions are in order of first appearance: compare the
            // last two.
            let mut comparisons = Vec::new();
            for (index, stats) in version_stats.iter().enumerate() {
                let next_is_other = version_stats
                    .get(index + 1)
                    .is_none_or(|next| next.version.template_id != stats.version.template_id);
                if next_is_other && index > 0 && stats.version.template_id != NO_TEMPLATE {
                    let previous = &version_stats[index - 1];
                    if previous.version.template_id == stats.version.template_id {
                        comparisons.push(compare(previous, stats));
                    }
                }
            }
            comparisons
        }
    };

    let baseline_rate = rate(failures, responses);
    let (prior_alpha, prior_beta) = stats::baseline_prior(baseline_rate);
    let mut chunk_lifts: Vec<ChunkLift> = chunks
        .into_iter()
        .filter(|(_, (n, _))| *n >= query.min_chunk_responses)
        .map(|(chunk_id, (n, fails))| {
            let smoothed_rate = stats::smoothed_rate(fails, n, prior_alpha, prior_beta);
            ChunkLift {
                chunk_id,
                responses: n,
                failures: fails,
                failure_rate: rate(fails, n),
                smoothed_rate,
                lift: if baseline_rate > 0.0 {
                    smoothed_rate / baseline_rate
                } else {
                    0.0
                },
            }
        })
        .collect();
    chunk_lifts.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    chunk_lifts.truncate(MAX_CHUNKS);

    let signals = signal_stats(conn, since)?;
    let daily = days
        .into_iter()
        .map(|(day, (n, fails))| DayStats {
            day: format_day(day),
            responses: n,
            failures: fails,
            failure_rate: rate(fails, n),
        })
        .collect();
    Ok(Report {
        since: query.since_s.map(format_rfc3339),
        responses,
        failures,
        unattributed_failures,
        baseline_rate,
        versions: version_stats,
        comparisons,
        prior_alpha,
        prior_beta,
        min_chunk_responses: query.min_chunk_responses,
        chunks: chunk_lifts,
        signals,
        daily,
        calibration: calibration.finish(query.target_half_width),
        alerts: conn
            .alerts(since)?
            .into_iter()
            .map(|alert| AlertSummary {
                id: format!("alert_{}", alert.id),
                monitor: alert.monitor,
                fired: format_rfc3339(alert.fired_s),
                resolved: alert.resolved_s.map(format_rfc3339),
                baseline_rate: alert.baseline_rate,
                observed_rate: alert.observed_rate,
                owner: alert.owner,
                due: alert.due_s.map(format_rfc3339),
                detail: alert
                    .detail
                    .as_deref()
                    .and_then(|detail| serde_json::from_str(detail).ok()),
            })
            .collect(),
    })
}

fn signal_stats(conn: &mut Connection, since: i64) -> Result<Vec<SignalStats>, StoreError> {
    let mut by_signal: BTreeMap<String, SignalStats> = BTreeMap::new();
    for count in conn.feedback_by_signal(since)? {
        let signal = count.signal.as_str().to_owned();
        by_signal.insert(
            signal.clone(),
            SignalStats {
                signal,
                feedback: count.feedback,
                negative: count.negative,
                failure_records: 0,
            },
        );
    }
    for signals in conn.failure_signals(since)? {
        for signal in signals {
            by_signal
                .entry(signal.as_str().to_owned())
                .or_insert_with(|| SignalStats {
                    signal: signal.as_str().to_owned(),
                    feedback: 0,
                    negative: 0,
                    failure_records: 0,
                })
                .failure_records += 1;
        }
    }
    Ok(by_signal.into_values().collect())
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// The report as text, for a terminal.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "closedloop report{}",
        report
            .since
            .as_ref()
            .map(|since| format!(" since {since}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{} responses, {} with a failure record ({}); {} failure records without a stored response\n",
        report.responses,
        report.failures,
        percent(report.baseline_rate),
        report.unattributed_failures
    );
    let _ = writeln!(
        out,
        "Failure rate by template version (95% Wilson interval)"
    );
    for stats in &report.versions {
        let _ = writeln!(
            out,
            "  {:<40} {:>6}/{:<6} {:>6}  [{}, {}]",
            stats.version.to_string(),
            stats.failures,
            stats.responses,
            percent(stats.failure_rate),
            percent(stats.wilson_low),
            percent(stats.wilson_high)
        );
    }
    let _ = writeln!(out, "\nVersion comparisons (α = {})", stats::ALPHA);
    if report.comparisons.is_empty() {
        let _ = writeln!(out, "  (no template with two versions)");
    }
    for comparison in &report.comparisons {
        let verdict = if comparison.test.regression {
            "REGRESSION"
        } else {
            "no significant regression"
        };
        let _ = writeln!(
            out,
            "  {} -> {}: {} -> {}, {} p = {:.4}: {verdict}; category mix TVD {:.3}{}",
            comparison.old.version,
            comparison.new.version,
            percent(comparison.old.failure_rate),
            percent(comparison.new.failure_rate),
            match comparison.test.test {
                stats::RateTest::TwoProportionZ => "z-test",
                stats::RateTest::FisherExact => "Fisher exact",
            },
            comparison.test.p_value,
            comparison.category_tvd,
            if comparison.mix_shift {
                " (SHIFTED)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "\nChunks by failure lift (at least {} responses; prior Beta({:.2}, {:.2}))",
        report.min_chunk_responses, report.prior_alpha, report.prior_beta
    );
    for chunk in &report.chunks {
        let _ = writeln!(
            out,
            "  {:<40} lift {:>5.2}  {:>5}/{:<5} smoothed {}",
            chunk.chunk_id,
            chunk.lift,
            chunk.failures,
            chunk.responses,
            percent(chunk.smoothed_rate)
        );
    }
    let _ = writeln!(out, "\nSignals (feedback, negative, failure records)");
    for signal in &report.signals {
        let _ = writeln!(
            out,
            "  {:<14} {:>7} {:>7} {:>7}",
            signal.signal, signal.feedback, signal.negative, signal.failure_records
        );
    }
    render_calibration(&mut out, &report.calibration);
    let _ = writeln!(out, "\nMonitor alerts");
    if report.alerts.is_empty() {
        let _ = writeln!(out, "  (none in the window)");
    }
    for alert in &report.alerts {
        let _ = writeln!(
            out,
            "  {} {:<48} {} -> {}  fired {}  {}  owner {}",
            alert.id,
            alert.monitor,
            percent(alert.baseline_rate),
            percent(alert.observed_rate),
            alert.fired,
            alert
                .resolved
                .as_ref()
                .map_or_else(|| "FIRING".to_owned(), |at| format!("resolved {at}")),
            alert.owner.as_deref().unwrap_or("nobody")
        );
    }
    let _ = writeln!(out, "\nDaily trend");
    for day in &report.daily {
        let _ = writeln!(
            out,
            "  {}  {:>7} responses  {:>6} failures  {}",
            day.day,
            day.responses,
            day.failures,
            percent(day.failure_rate)
        );
    }
    out
}

fn interval(value: Option<&Interval>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |value| {
            format!(
                "{} [{}, {}]",
                percent(value.rate),
                percent(value.low),
                percent(value.high)
            )
        },
    )
}

fn render_calibration(out: &mut String, calibration: &Calibration) {
    let _ = writeln!(
        out,
        "\nTrue failure rate from the review sample ({} labels on {} day{}{}; 95% intervals)",
        calibration.labels,
        calibration.labelled_days,
        if calibration.labelled_days == 1 {
            ""
        } else {
            "s"
        },
        if calibration.stratified_labels > 0 {
            format!(
                "; {} labels of stratified samples left out",
                calibration.stratified_labels
            )
        } else {
            String::new()
        }
    );
    if calibration.labels == 0 {
        let _ = writeln!(
            out,
            "  (no labelled uniform review sample in the window: see `closedloop review`)"
        );
        return;
    }
    let _ = writeln!(
        out,
        "  {:<32} {:>9} {:>7} {:>6}  {:<22} {:<22} more labels for ±{}",
        "group",
        "responses",
        "signal",
        "labels",
        "labels only",
        "prediction-powered",
        percent(calibration.target_half_width)
    );
    for estimate in &calibration.estimates {
        let group = if estimate.dimension == Dimension::All {
            "all".to_owned()
        } else {
            format!("{} {}", estimate.dimension.as_str(), estimate.value)
        };
        let ppi = estimate.prediction_powered.map(|ppi| Interval {
            rate: ppi.estimate,
            low: ppi.low,
            high: ppi.high,
        });
        let _ = writeln!(
            out,
            "  {:<32} {:>9} {:>7} {:>6}  {:<22} {:<22} {}",
            group,
            estimate.responses,
            percent(estimate.signal_rate),
            estimate.labelled,
            interval(estimate.labels_only.as_ref()),
            interval(ppi.as_ref()),
            estimate
                .more_labels_needed
                .map_or_else(|| "-".to_owned(), |more| more.to_string())
        );
    }
    let _ = writeln!(
        out,
        "\nSignals against reviewer labels (precision: flagged and bad; recall: bad and flagged)"
    );
    for signal in &calibration.signals {
        let _ = writeln!(
            out,
            "  {:<12} {:<11} {:>5} flagged  precision {:<22} recall {}{}",
            signal.signal,
            match signal.origin {
                SignalOrigin::Application => "application",
                SignalOrigin::Detector => "detector",
            },
            signal.table.flagged(),
            interval(signal.precision.as_ref()),
            interval(signal.recall.as_ref()),
            if signal.positive {
                " (positive signal)"
            } else {
                ""
            }
        );
    }
    let any = &calibration.any_signal;
    let _ = writeln!(
        out,
        "  {:<24} {:>5} flagged  precision {:<22} recall {}",
        "any negative signal",
        any.flagged(),
        interval(Interval::from_triple(any.precision()).as_ref()),
        interval(Interval::from_triple(any.recall()).as_ref()),
    );
    let _ = writeln!(
        out,
        "  silent failures: {} of {} reviewer-bad responses had no negative signal: {}",
        any.bad_unflagged,
        any.bad(),
        interval(calibration.silent_failure_rate.as_ref())
    );
}
