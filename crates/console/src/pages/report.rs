//! The report: the per-template-version comparison (rates, Wilson intervals, the rate test's
//! p-value, the category mix shift) and chunk lift, as `closedloop report` computes them,
//! with an interval chart of the versions' rates.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use closedloop_commands::report::stats::ALPHA;
use closedloop_commands::report::{
    self, ChunkLift, Comparison, Report, ReportQuery, SignalStats, TemplateVersion,
    DEFAULT_MIN_CHUNK_RESPONSES,
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
        report,
    })
}
