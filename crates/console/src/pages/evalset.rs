//! The eval set: the cases grown from failure records, with their counts and provenance, and
//! the same cases as JSONL or CSV downloads (`closedloop evalset export`'s formats).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use closedloop_commands::evalset::{self, EvalCase, EvalsetQuery, LabelFilter};
use serde::Deserialize;

use super::{render, window_start_s, Chrome};
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::App;

/// The windows people can choose, in days (0: everything stored).
const WINDOWS: &[u32] = &[7, 30, 90, 0];

/// The most cases listed on the page; downloads carry every case of the records read.
const MAX_LISTED: usize = 200;

/// The newest failure records of the window the page and its downloads read. Merging near
/// duplicates compares each record with every case before it, so this bounds the work of a
/// request; `closedloop evalset export` reads them all.
pub(crate) const MAX_RECORDS: usize = 2_000;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/ui/evalset", get(evalset_page))
        .route("/ui/evalset.jsonl", get(download_jsonl))
        .route("/ui/evalset.csv", get(download_csv))
}

#[derive(Clone, Debug, Default, Deserialize)]
struct EvalsetForm {
    days: Option<u32>,
    template: Option<String>,
    category: Option<String>,
    labels: Option<String>,
}

impl EvalsetForm {
    fn days(&self) -> u32 {
        self.days
            .filter(|days| WINDOWS.contains(days))
            .unwrap_or(30)
    }

    fn query(&self) -> Result<EvalsetQuery, PageError> {
        let days = self.days();
        let mut query = EvalsetQuery {
            since_s: window_start_s(days),
            category: self
                .category
                .clone()
                .filter(|category| !category.is_empty()),
            labels: match self.labels.as_deref().unwrap_or("") {
                "" | "any" => LabelFilter::Any,
                "labelled" => LabelFilter::Labelled,
                "unlabelled" => LabelFilter::Unlabelled,
                other => {
                    return Err(PageError::BadRequest(format!(
                        "labels must be any, labelled or unlabelled, not {other:?}"
                    )))
                }
            },
            max_records: Some(MAX_RECORDS),
            ..EvalsetQuery::default()
        };
        if let Some(template) = self
            .template
            .as_deref()
            .filter(|template| !template.is_empty())
        {
            query = query.with_template(template);
        }
        Ok(query)
    }

    /// The same filters as a query string, for the download links.
    fn query_string(&self) -> String {
        let pairs = [
            ("days", Some(self.days().to_string())),
            ("template", self.template.clone()),
            ("category", self.category.clone()),
            ("labels", self.labels.clone()),
        ];
        let kept: Vec<(&str, String)> = pairs
            .into_iter()
            .filter_map(|(key, value)| value.filter(|value| !value.is_empty()).map(|v| (key, v)))
            .collect();
        serde_urlencoded::to_string(kept).unwrap_or_default()
    }
}

async fn cases(app: &App, form: &EvalsetForm) -> Result<Vec<EvalCase>, PageError> {
    let query = form.query()?;
    app.store
        .run(move |conn| evalset::cases(conn, &query))
        .await
}

#[derive(Template)]
#[template(path = "evalset.html")]
struct EvalsetPage {
    chrome: Chrome,
    days: u32,
    windows: &'static [u32],
    max_records: usize,
    form: EvalsetForm,
    categories: Vec<&'static str>,
    download: String,
    total: usize,
    records: usize,
    with_expected: usize,
    cases: Vec<EvalCase>,
}

/// `GET /ui/evalset`.
async fn evalset_page(
    State(app): State<App>,
    signed: SignedIn,
    Query(form): Query<EvalsetForm>,
) -> Result<Response, PageError> {
    let mut cases = cases(&app, &form).await?;
    let total = cases.len();
    let records = cases.iter().map(|case| case.metadata.count).sum();
    let with_expected = cases.iter().filter(|case| case.expected.is_some()).count();
    // The most frequent first: they are the cases worth fixing first.
    cases.sort_by_key(|case| std::cmp::Reverse(case.metadata.count));
    cases.truncate(MAX_LISTED);
    render(&EvalsetPage {
        chrome: Chrome::new(&signed, "evalset", "Eval set"),
        days: form.days(),
        windows: WINDOWS,
        max_records: MAX_RECORDS,
        download: form.query_string(),
        categories: closedloop_engine::vocab::FailureCategory::ALL
            .iter()
            .map(|category| category.as_str())
            .collect(),
        form,
        total,
        records,
        with_expected,
        cases,
    })
}

/// `GET /ui/evalset.jsonl` and `GET /ui/evalset.csv`: every case of the filters, as
/// `closedloop evalset export` writes them.
async fn download(app: &App, form: &EvalsetForm, format: Format) -> Result<Response, PageError> {
    let cases = cases(app, form).await?;
    let (content_type, disposition, body) = match format {
        Format::Jsonl => (
            "application/jsonl; charset=utf-8",
            "attachment; filename=\"closedloop-evalset.jsonl\"",
            evalset::to_jsonl(&cases),
        ),
        Format::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"closedloop-evalset.csv\"",
            evalset::to_csv(&cases),
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A download's format.
#[derive(Clone, Copy, Debug)]
enum Format {
    Jsonl,
    Csv,
}

async fn download_jsonl(
    State(app): State<App>,
    _signed: SignedIn,
    Query(form): Query<EvalsetForm>,
) -> Result<Response, PageError> {
    download(&app, &form, Format::Jsonl).await
}

async fn download_csv(
    State(app): State<App>,
    _signed: SignedIn,
    Query(form): Query<EvalsetForm>,
) -> Result<Response, PageError> {
    download(&app, &form, Format::Csv).await
}
