//! The overview: the failure rate per template version over days with 95% Wilson bands,
//! negative signals and failure categories over days, open and overdue records by owner, and
//! review progress.
//!
//! The per-day counts scan every response of the window, so they are computed on a blocking
//! thread at most once per [`REFRESH`] for each window and kept in memory; a page older than
//! that is served at once while a fresh copy is computed beside it (the page says when its
//! counts were taken). Owners and review progress are read live.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use closedloop_commands::report::stats::wilson;
use closedloop_engine::timefmt::{format_day, format_rfc3339, DAY_SECS};
use closedloop_store::records::{DayCount, DayVersionCount, OwnerLoad, ReviewProgress};
use serde::Deserialize;

use super::{now_s, render, Chrome};
use crate::auth::SignedIn;
use crate::chart::{self, BarChart, LineChart, LinePoint, LineSeries, Scale};
use crate::error::PageError;
use crate::App;

/// How long per-day counts are served before they are computed again.
pub(crate) const REFRESH: Duration = Duration::from_secs(60);

/// The most template versions drawn; the others are listed as a count.
const MAX_VERSIONS: usize = 6;

/// The most categories or signals drawn as their own series; the rest are "other".
const MAX_STACKED: usize = 7;

/// The windows people can choose, in days.
const WINDOWS: &[u32] = &[7, 30, 90];

pub(super) fn routes() -> Router<App> {
    Router::new().route("/ui/", get(overview))
}

/// The per-day counts of one window.
#[derive(Debug)]
pub(crate) struct DailyCounts {
    since_s: i64,
    taken_s: i64,
    versions: Vec<DayVersionCount>,
    categories: Vec<DayCount>,
    signals: Vec<DayCount>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    counts: Arc<DailyCounts>,
}

/// The per-day counts of each window, and the windows being computed.
#[derive(Debug, Default)]
pub(crate) struct OverviewCache {
    windows: Mutex<HashMap<i64, Cached>>,
    computing: Mutex<HashSet<i64>>,
}

impl OverviewCache {
    fn get(&self, since_s: i64) -> Option<(Arc<DailyCounts>, bool)> {
        let windows = self.windows.lock().ok()?;
        windows
            .get(&since_s)
            .map(|cached| (Arc::clone(&cached.counts), cached.at.elapsed() < REFRESH))
    }

    /// Marks the window `since_s` as being computed; `false` when it already is.
    fn start(&self, since_s: i64) -> bool {
        self.computing
            .lock()
            .is_ok_and(|mut computing| computing.insert(since_s))
    }

    fn done(&self, since_s: i64) {
        if let Ok(mut computing) = self.computing.lock() {
            computing.remove(&since_s);
        }
    }

    fn put(&self, counts: Arc<DailyCounts>) {
        if let Ok(mut windows) = self.windows.lock() {
            // Windows of past days are never asked for again.
            windows.retain(|since, _| *since >= counts.since_s - 90 * DAY_SECS);
            windows.insert(
                counts.since_s,
                Cached {
                    at: Instant::now(),
                    counts,
                },
            );
        }
    }
}

async fn compute(app: &App, since_s: i64) -> Result<Arc<DailyCounts>, PageError> {
    let counts = app
        .store
        .run(move |conn| {
            Ok::<_, closedloop_store::StoreError>(DailyCounts {
                since_s,
                taken_s: now_s(),
                versions: conn.day_version_counts(since_s)?,
                categories: conn.day_category_counts(since_s)?,
                signals: conn.day_signal_counts(since_s)?,
            })
        })
        .await?;
    let counts = Arc::new(counts);
    app.overview.put(Arc::clone(&counts));
    Ok(counts)
}

/// The window's counts: cached, or computed now when there are none; a stale copy is
/// served while a refresh runs beside the request.
async fn daily_counts(app: &App, since_s: i64) -> Result<Arc<DailyCounts>, PageError> {
    match app.overview.get(since_s) {
        Some((counts, true)) => Ok(counts),
        Some((counts, false)) => {
            if app.overview.start(since_s) {
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(error) = compute(&app, since_s).await {
                        tracing::warn!(%error, "Overview refresh failed.");
                    }
                    app.overview.done(since_s);
                });
            }
            Ok(counts)
        }
        None => {
            // The first request of a window computes it; others arriving meanwhile compute
            // it too rather than wait, which is bounded by the store's connection limit.
            let started = app.overview.start(since_s);
            let counts = compute(app, since_s).await;
            if started {
                app.overview.done(since_s);
            }
            counts
        }
    }
}

#[derive(Debug, Deserialize)]
struct OverviewQuery {
    days: Option<u32>,
}

/// One template version's totals in the window.
struct VersionTotal {
    name: String,
    color: &'static str,
    responses: u64,
    failures: u64,
    rate: String,
    interval: String,
}

/// One owner's row.
struct OwnerRow {
    owner: String,
    open: u64,
    acknowledged: u64,
    overdue: u64,
}

/// A legend entry.
struct Legend {
    name: String,
    color: &'static str,
}

/// Review progress of a sampled day.
struct Progress {
    day: String,
    items: u64,
    labelled: u64,
    percent: u64,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    days: u32,
    windows: &'static [u32],
    taken: String,
    responses: u64,
    failures: u64,
    rate: String,
    open: u64,
    overdue: u64,
    versions: Vec<VersionTotal>,
    hidden_versions: usize,
    rate_chart: String,
    signal_chart: String,
    signal_legend: Vec<Legend>,
    category_chart: String,
    category_legend: Vec<Legend>,
    owners: Vec<OwnerRow>,
    review: Option<Progress>,
    earlier_reviews: Vec<Progress>,
}

/// `GET /ui/`.
async fn overview(
    State(app): State<App>,
    signed: SignedIn,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, PageError> {
    let days = query
        .days
        .filter(|days| WINDOWS.contains(days))
        .unwrap_or(30);
    let now = now_s();
    let today = now.div_euclid(DAY_SECS);
    let first_day = today - i64::from(days) + 1;
    let since_s = first_day * DAY_SECS;
    let counts = daily_counts(&app, since_s).await?;
    let (owners, reviews) = app
        .store
        .run(move |conn| {
            Ok::<_, closedloop_store::StoreError>((
                conn.owner_loads(now)?,
                conn.review_progress(4)?,
            ))
        })
        .await?;
    let day_labels: Vec<String> = (first_day..=today).map(format_day).collect();
    let column = |day: i64| {
        usize::try_from(day - first_day)
            .ok()
            .filter(|x| *x < day_labels.len())
    };

    // Versions: totals in the window, the largest drawn.
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for count in &counts.versions {
        let total = totals.entry(version_name(count)).or_default();
        total.0 += count.responses;
        total.1 += count.failures;
    }
    let mut ranked: Vec<(String, (u64, u64))> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let hidden_versions = ranked.len().saturating_sub(MAX_VERSIONS);
    ranked.truncate(MAX_VERSIONS);
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    let mut series = Vec::new();
    let mut versions = Vec::new();
    for (index, (name, (responses, failures))) in ranked.iter().enumerate() {
        let mut per_day: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for count in counts
            .versions
            .iter()
            .filter(|count| &version_name(count) == name)
        {
            if let Some(x) = column(count.day) {
                let day = per_day.entry(x).or_default();
                day.0 += count.responses;
                day.1 += count.failures;
            }
        }
        series.push(LineSeries {
            name: name.clone(),
            points: per_day
                .into_iter()
                .map(|(x, (n, fails))| {
                    let (low, high) = wilson(fails, n);
                    LinePoint {
                        x,
                        value: ratio(fails, n),
                        low,
                        high,
                        detail: format!("{fails} of {n} responses"),
                    }
                })
                .collect(),
        });
        let (low, high) = wilson(*failures, *responses);
        versions.push(VersionTotal {
            name: name.clone(),
            color: chart::color(index),
            responses: *responses,
            failures: *failures,
            rate: percent(ratio(*failures, *responses)),
            interval: format!("{}–{}", percent(low), percent(high)),
        });
    }
    let responses: u64 = counts.versions.iter().map(|count| count.responses).sum();
    let failures: u64 = counts.versions.iter().map(|count| count.failures).sum();
    let rate_chart = LineChart {
        title: "Failure rate per template version, per day, with 95% intervals".into(),
        x_labels: day_labels.clone(),
        series,
        scale: Scale::Rate,
    }
    .svg()?;
    let (signal_chart, signal_legend) = stacked(
        "Negative signals per day",
        &counts.signals,
        &day_labels,
        &column,
    )?;
    let (category_chart, category_legend) = stacked(
        "Failure records per day by category",
        &counts.categories,
        &day_labels,
        &column,
    )?;
    let open = owners
        .iter()
        .map(|load| load.open + load.acknowledged)
        .sum();
    let overdue = owners.iter().map(|load| load.overdue).sum();
    let mut reviews = reviews.into_iter().map(progress);
    render(&OverviewPage {
        chrome: Chrome::new(&signed, "overview", "Overview"),
        days,
        windows: WINDOWS,
        taken: format_rfc3339(counts.taken_s),
        responses,
        failures,
        rate: percent(ratio(failures, responses)),
        open,
        overdue,
        versions,
        hidden_versions,
        rate_chart,
        signal_chart,
        signal_legend,
        category_chart,
        category_legend,
        owners: owners.into_iter().map(owner_row).collect(),
        review: reviews.next(),
        earlier_reviews: reviews.collect(),
    })
}

fn version_name(count: &DayVersionCount) -> String {
    format!(
        "{}@{}",
        count.template_id.as_deref().unwrap_or("(none)"),
        count.template_version.as_deref().unwrap_or("(none)")
    )
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// A stacked bar chart of `counts` per day, the largest values as their own series and the
/// rest as `other`, and its legend.
fn stacked(
    title: &str,
    counts: &[DayCount],
    day_labels: &[String],
    column: &dyn Fn(i64) -> Option<usize>,
) -> Result<(String, Vec<Legend>), askama::Error> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for count in counts {
        *totals.entry(count.value.as_str()).or_default() += count.count;
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut names: Vec<String> = ranked
        .iter()
        .take(MAX_STACKED)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let other = ranked.len() > MAX_STACKED;
    if other {
        names.push("other".into());
    }
    let mut grid = vec![vec![0u64; names.len()]; day_labels.len()];
    for count in counts {
        let Some(x) = column(count.day) else { continue };
        let series = names
            .iter()
            .position(|name| name == &count.value)
            .unwrap_or(names.len() - 1);
        grid[x][series] += count.count;
    }
    let legend = names
        .iter()
        .enumerate()
        .map(|(index, name)| Legend {
            name: name.clone(),
            color: chart::color(index),
        })
        .collect();
    let svg = BarChart {
        title: title.into(),
        x_labels: day_labels.to_vec(),
        series: names,
        counts: grid,
    }
    .svg()?;
    Ok((svg, legend))
}

fn owner_row(load: OwnerLoad) -> OwnerRow {
    OwnerRow {
        owner: load.owner.unwrap_or_default(),
        open: load.open,
        acknowledged: load.acknowledged,
        overdue: load.overdue,
    }
}

fn progress(day: ReviewProgress) -> Progress {
    Progress {
        percent: (ratio(day.labelled, day.items) * 100.0).round() as u64,
        day: day.day,
        items: day.items,
        labelled: day.labelled,
    }
}
