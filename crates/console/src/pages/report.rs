//! The report: the per-template-version comparison (rates, Wilson intervals, the rate test's
//! p-value, the category mix shift) and chunk lift, as `closedloop report` computes them,
//! with an interval chart of the versions' rates; and what the review sample says
//! (`Report::calibration`): the true failure rate from the labels alone and prediction-powered,
//! the labels still needed, and each signal's precision and recall against reviewer labels.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use closedloop_commands::report::stats::ALPHA;
use closedloop_commands::report::{
    self, Calibration, ChunkLift, Comparison, Dimension, Estimate, Interval, Report, ReportQuery,
    SignalOrigin, SignalStats, TemplateVersion, DEFAULT_MIN_CHUNK_RESPONSES,
};
use serde::Deserialize;

use super::{render, window_start_s, Chrome};
use crate::auth::SignedIn;
use crate::chart::{IntervalChart, IntervalRow};
use crate::error::PageError;
use crate::App;

/// The windows people can choose, in days (0: everything stored).
const WINDOWS: &[u32] = &[7, 30, 90, 0];

pub(super) fn routes() -> Router<App> {
    Router::new().route("/ui/report", get(report_page))
}

#[derive(Debug, Default, Deserialize)]
struct ReportForm {
    days: Option<u32>,
    old: Option<String>,
    new: Option<String>,
}

/// A comparison as the page words it.
struct Verdict {
    comparison: Comparison,
    rate_change: String,
    rate_word: &'static str,
    rate_class: &'static str,
    mix_word: String,
}

struct VersionRow {
    name: String,
    responses: u64,
    failures: u64,
    rate: String,
    interval: String,
    categories: String,
}

/// A row of the true-failure-rate table.
struct EstimateRow {
    /// The dimension (`all`, `template version`, ...).
    dimension: &'static str,
    /// The group's value (empty for `all`).
    value: String,
    responses: u64,
    signal_rate: String,
    /// `bad of labelled`.
    labels: String,
    labels_only: String,
    prediction_powered: String,
    more_labels: String,
}

/// A row of the signals-against-labels table.
struct SignalRow {
    signal: String,
    origin: &'static str,
    flagged: u64,
    precision: String,
    recall: String,
    note: &'static str,
}

/// What the review sample says, as the page words it.
struct CalibrationView {
    /// `N labels on D days`, and the stratified labels left out.
    summary: String,
    /// ±the target half-width.
    target: String,
    /// The labels-only, prediction-powered and signal rates per template version.
    chart: String,
    estimates: Vec<EstimateRow>,
    signals: Vec<SignalRow>,
    /// The "any negative signal" row.
    any: SignalRow,
    /// The silent failures, in words.
    silent: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    chrome: Chrome,
    days: u32,
    windows: &'static [u32],
    report: Report,
    baseline: String,
    chart: String,
    versions: Vec<VersionRow>,
    names: Vec<String>,
    old: String,
    new: String,
    verdicts: Vec<Verdict>,
    chunks: Vec<ChunkLift>,
    signals: Vec<SignalStats>,
    calibration: CalibrationView,
    alerts: Vec<AlertRow>,
}

/// A monitor's alert, as the page shows it.
struct AlertRow {
    id: String,
    monitor: String,
    change: String,
    fired: String,
    state: String,
    owner: String,
    due: String,
}

fn alert_rows(report: &Report) -> Vec<AlertRow> {
    report
        .alerts
        .iter()
        .map(|alert| AlertRow {
            id: alert.id.clone(),
            monitor: alert.monitor.clone(),
            change: format!(
                "{} → {}",
                percent(alert.baseline_rate),
                percent(alert.observed_rate)
            ),
            fired: alert.fired.clone(),
            state: alert
                .resolved
                .as_ref()
                .map_or_else(|| "firing".to_owned(), |at| format!("resolved {at}")),
            owner: alert.owner.clone().unwrap_or_else(|| "nobody".to_owned()),
            due: alert.due.clone().unwrap_or_else(|| "-".to_owned()),
        })
        .collect()
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn verdict(comparison: Comparison) -> Verdict {
    let (old, new) = (comparison.old.failure_rate, comparison.new.failure_rate);
    let significant = comparison.test.p_value < ALPHA;
    let (rate_word, rate_class) = match (significant, new.total_cmp(&old)) {
        (true, std::cmp::Ordering::Less) => ("better", "good"),
        (true, std::cmp::Ordering::Greater) => ("worse", "bad"),
        _ => ("no significant change", "muted"),
    };
    let mix_word = if comparison.mix_shift {
        format!(
            "the kinds of failure changed (total variation {:.2}, χ² p = {:.3})",
            comparison.category_tvd, comparison.category_p_value
        )
    } else {
        format!(
            "the kinds of failure are alike (total variation {:.2})",
            comparison.category_tvd
        )
    };
    Verdict {
        rate_change: format!("{} → {}", percent(old), percent(new)),
        rate_word,
        rate_class,
        mix_word,
        comparison,
    }
}

/// A rate with its interval, `55.0% (34.2%–74.2%)`, or `–` without one.
fn with_interval(value: Option<Interval>) -> String {
    value.map_or_else(
        || "–".to_owned(),
        |value| {
            format!(
                "{} ({}–{})",
                percent(value.rate),
                percent(value.low),
                percent(value.high)
            )
        },
    )
}

fn interval(triple: Option<(f64, f64, f64)>) -> Option<Interval> {
    triple.map(|(rate, low, high)| Interval { rate, low, high })
}

fn prediction_powered(estimate: &Estimate) -> Option<Interval> {
    estimate.prediction_powered.map(|ppi| Interval {
        rate: ppi.estimate,
        low: ppi.low,
        high: ppi.high,
    })
}

/// The labels-only, prediction-powered and signal rate of each template version, three rows
/// each.
fn calibration_chart(calibration: &Calibration) -> Result<String, askama::Error> {
    let mut rows = Vec::new();
    for estimate in &calibration.estimates {
        if estimate.dimension != Dimension::TemplateVersion {
            continue;
        }
        let name = &estimate.value;
        if let Some(labels) = estimate.labels_only {
            rows.push(IntervalRow {
                name: format!("{name} labels only"),
                value: labels.rate,
                low: labels.low,
                high: labels.high,
                detail: format!(
                    "{} of {} labels bad",
                    estimate.labelled_bad, estimate.labelled
                ),
            });
        }
        if let Some(ppi) = estimate.prediction_powered {
            rows.push(IntervalRow {
                name: format!("{name} prediction-powered"),
                value: ppi.estimate,
                low: ppi.low,
                high: ppi.high,
                detail: format!("{:.0} effective labels", ppi.effective_labels),
            });
        }
        let (low, high) = report::stats::wilson(estimate.signalled, estimate.responses);
        rows.push(IntervalRow {
            name: format!("{name} signal rate"),
            value: estimate.signal_rate,
            low,
            high,
            detail: format!(
                "{} of {} responses signalled",
                estimate.signalled, estimate.responses
            ),
        });
    }
    if rows.is_empty() {
        return Ok(String::new());
    }
    IntervalChart {
        title: "True failure rate per template version: labels only, prediction-powered, and the signal rate, with 95% intervals".into(),
        rows,
    }
    .svg()
}

fn calibration_view(calibration: &Calibration) -> Result<CalibrationView, askama::Error> {
    let days = calibration.labelled_days;
    let mut summary = format!(
        "{} labels on {days} day{}",
        calibration.labels,
        if days == 1 { "" } else { "s" }
    );
    if calibration.stratified_labels > 0 {
        summary.push_str(&format!(
            "; {} labels of stratified samples left out",
            calibration.stratified_labels
        ));
    }
    let estimates = calibration
        .estimates
        .iter()
        .map(|estimate| EstimateRow {
            dimension: estimate.dimension.as_str(),
            value: if estimate.dimension == Dimension::All {
                String::new()
            } else {
                estimate.value.clone()
            },
            responses: estimate.responses,
            signal_rate: percent(estimate.signal_rate),
            labels: format!("{} of {}", estimate.labelled_bad, estimate.labelled),
            labels_only: with_interval(estimate.labels_only),
            prediction_powered: with_interval(prediction_powered(estimate)),
            more_labels: estimate
                .more_labels_needed
                .map_or_else(|| "–".to_owned(), |more| more.to_string()),
        })
        .collect();
    let signals = calibration
        .signals
        .iter()
        .map(|signal| SignalRow {
            signal: signal.signal.clone(),
            origin: match signal.origin {
                SignalOrigin::Application => "application",
                SignalOrigin::Detector => "detector",
            },
            flagged: signal.table.flagged(),
            precision: with_interval(signal.precision),
            recall: with_interval(signal.recall),
            note: if signal.positive {
                "positive signal: it flags a response by being there, so a good signal has a low precision"
            } else {
                ""
            },
        })
        .collect();
    let any = &calibration.any_signal;
    Ok(CalibrationView {
        summary,
        target: percent(calibration.target_half_width),
        chart: calibration_chart(calibration)?,
        estimates,
        signals,
        any: SignalRow {
            signal: "any negative signal".into(),
            origin: "",
            flagged: any.flagged(),
            precision: with_interval(interval(any.precision())),
            recall: with_interval(interval(any.recall())),
            note: "",
        },
        silent: format!(
            "{} of {} reviewer-bad responses had no negative signal: {}",
            any.bad_unflagged,
            any.bad(),
            with_interval(calibration.silent_failure_rate)
        ),
    })
}

/// `GET /ui/report`.
async fn report_page(
    State(app): State<App>,
    signed: SignedIn,
    Query(form): Query<ReportForm>,
) -> Result<Response, PageError> {
    let days = form
        .days
        .filter(|days| WINDOWS.contains(days))
        .unwrap_or(30);
    let since_s = window_start_s(days);
    let parse = |text: &Option<String>| {
        text.as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                TemplateVersion::parse(text).ok_or_else(|| {
                    PageError::BadRequest(format!("{text:?} is not a template version ID@VERSION"))
                })
            })
            .transpose()
    };
    let compare = match (parse(&form.old)?, parse(&form.new)?) {
        (Some(old), Some(new)) => Some((old, new)),
        _ => None,
    };
    let query = ReportQuery {
        since_s,
        compare,
        min_chunk_responses: DEFAULT_MIN_CHUNK_RESPONSES,
        ..ReportQuery::default()
    };
    let report = app
        .store
        .run(move |conn| report::report(conn, &query))
        .await?;
    let chart = IntervalChart {
        title: "Failure rate per template version, with 95% Wilson intervals".into(),
        rows: report
            .versions
            .iter()
            .map(|stats| IntervalRow {
                name: stats.version.to_string(),
                value: stats.failure_rate,
                low: stats.wilson_low,
                high: stats.wilson_high,
                detail: format!("{} of {} responses", stats.failures, stats.responses),
            })
            .collect(),
    }
    .svg()?;
    let versions = report
        .versions
        .iter()
        .map(|stats| VersionRow {
            name: stats.version.to_string(),
            responses: stats.responses,
            failures: stats.failures,
            rate: percent(stats.failure_rate),
            interval: format!(
                "{}–{}",
                percent(stats.wilson_low),
                percent(stats.wilson_high)
            ),
            categories: stats
                .categories
                .iter()
                .map(|(category, count)| format!("{category} {count}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let names = report
        .versions
        .iter()
        .map(|stats| stats.version.to_string())
        .collect();
    let verdicts = report.comparisons.iter().cloned().map(verdict).collect();
    let calibration = calibration_view(&report.calibration)?;
    let alerts = alert_rows(&report);
    render(&ReportPage {
        chrome: Chrome::new(&signed, "report", "Report"),
        days,
        windows: WINDOWS,
        baseline: percent(report.baseline_rate),
        chart,
        versions,
        names,
        old: form.old.unwrap_or_default(),
        new: form.new.unwrap_or_default(),
        verdicts,
        chunks: report.chunks.clone(),
        signals: report.signals.clone(),
        calibration,
        alerts,
        report,
    })
}
