//! The failure records: a filterable, paginated list, and a page per record with its
//! revisions, signals, enrichment and content, and the triage actions (acknowledge, resolve,
//! won't fix, reassign) as forms.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use closedloop_commands::triage::{self, parse_failure_id};
use closedloop_engine::failure_span::failure_id;
use closedloop_engine::timefmt::{format_rfc3339, parse_rfc3339};
use closedloop_engine::vocab::{FailureCategory, FailureSeverity, FailureStage, TriageStatus};
use closedloop_store::records::{
    FailureCursor, FailureDetail, FailureFacets, FailureFilter, FailureListRow, FailureRevision,
    RecordFeedback, SpanRef, TraceIdRange, TriageNote,
};
use serde::Deserialize;

use super::{now_s, relative, render, Chrome};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::PageError;
use crate::App;

/// Records per page of the list.
const PAGE_SIZE: usize = 50;

/// How many of the newest records the filters' suggested values are read from.
const FACET_SAMPLE: usize = 1_000;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/ui/records", get(list))
        .route("/ui/records/{id}", get(record))
        .route("/ui/records/{id}/status", post(set_status))
        .route("/ui/records/{id}/owner", post(reassign))
}

/// The list's query: the filters as the form sends them (empty fields are no filter) and
/// where the page starts.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    category: String,
    stage: String,
    severity: String,
    status: String,
    owner: String,
    template: String,
    version: String,
    model: String,
    source: String,
    since: String,
    until: String,
    trace: String,
    after: String,
}

/// `value`, or `None` when the field was left empty.
fn given(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// One of the generated enums from a form field.
fn choice<T: std::str::FromStr>(value: &str, what: &str) -> Result<Option<T>, PageError> {
    given(value)
        .map(|text| {
            text.parse()
                .map_err(|_| PageError::BadRequest(format!("unknown {what} {text:?}")))
        })
        .transpose()
}

/// A time as the form sends it, in UTC: `2026-12-01`, `2026-12-01T10:30` (a
/// `datetime-local` field) or RFC 3339. A bare date `until` includes that whole day.
fn form_time(value: &str, what: &str, end_of_day: bool) -> Result<Option<i64>, PageError> {
    let Some(text) = given(value) else {
        return Ok(None);
    };
    let parsed = match text.len() {
        10 => parse_rfc3339(&text).map(|day| if end_of_day { day + 86_400 } else { day }),
        16 => parse_rfc3339(&format!("{text}:00Z")),
        19 => parse_rfc3339(&format!("{text}Z")),
        _ => parse_rfc3339(&text),
    };
    parsed
        .map(Some)
        .ok_or_else(|| PageError::BadRequest(format!("{what} {text:?} is not a date and time")))
}

/// Where a page starts, as the list's links write it: `<created_s>.<trace id><span id>`.
fn cursor(value: &str) -> Result<Option<FailureCursor>, PageError> {
    let Some(text) = given(value) else {
        return Ok(None);
    };
    let bad = || PageError::BadRequest(format!("invalid page cursor {text:?}"));
    let (created_s, ids) = text.split_once('.').ok_or_else(bad)?;
    let created_s = created_s.parse().map_err(|_| bad())?;
    let ids = hex::decode(ids).map_err(|_| bad())?;
    if ids.len() != 24 {
        return Err(bad());
    }
    let key = SpanRef::from_bytes(&ids[..16], &ids[16..]).ok_or_else(bad)?;
    Ok(Some(FailureCursor { created_s, key }))
}

fn cursor_text(row: &FailureListRow) -> String {
    format!(
        "{}.{}{}",
        row.created_s,
        hex::encode(row.key.trace_id),
        hex::encode(row.key.span_id)
    )
}

impl ListQuery {
    fn filter(&self) -> Result<FailureFilter, PageError> {
        let trace_ids = match given(&self.trace) {
            None => None,
            Some(text) => Some(TraceIdRange::from_hex_prefix(&text).ok_or_else(|| {
                PageError::BadRequest(format!(
                    "a trace id is 32 hex digits; search by at least the first {} \
                     ({text:?} is neither)",
                    TraceIdRange::MIN_PREFIX
                ))
            })?),
        };
        Ok(FailureFilter {
            category: choice(&self.category, "category")?,
            stage: choice(&self.stage, "stage")?,
            severity: choice(&self.severity, "severity")?,
            status: choice(&self.status, "status")?,
            owner: given(&self.owner),
            template_id: given(&self.template),
            template_version: given(&self.version),
            model: given(&self.model),
            data_source: given(&self.source),
            created_since_s: form_time(&self.since, "since", false)?,
            created_until_s: form_time(&self.until, "until", true)?,
            trace_ids,
            after: cursor(&self.after)?,
        })
    }

    /// The filters as (field, value) pairs, every one of them, empty or not.
    fn fields(&self) -> [(&'static str, &str); 12] {
        [
            ("category", &self.category),
            ("stage", &self.stage),
            ("severity", &self.severity),
            ("status", &self.status),
            ("owner", &self.owner),
            ("template", &self.template),
            ("version", &self.version),
            ("model", &self.model),
            ("source", &self.source),
            ("since", &self.since),
            ("until", &self.until),
            ("trace", &self.trace),
        ]
    }

    /// The link to this list's page that starts after `after` (the first page when empty).
    fn link(&self, after: &str) -> String {
        let pairs: Vec<(&str, &str)> = self
            .fields()
            .into_iter()
            .chain([("after", after)])
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| (name, value.trim()))
            .collect();
        match serde_urlencoded::to_string(&pairs) {
            Ok(text) if !text.is_empty() => format!("/ui/records?{text}"),
            _ => "/ui/records".to_owned(),
        }
    }

    /// Whether any filter is set.
    fn is_filtered(&self) -> bool {
        self.fields()
            .iter()
            .any(|(_, value)| !value.trim().is_empty())
    }
}

/// A choice of a `<select>`: its value, and whether it is the one chosen.
struct Choice {
    value: &'static str,
    chosen: bool,
}

fn choices(all: impl IntoIterator<Item = &'static str>, chosen: &str) -> Vec<Choice> {
    all.into_iter()
        .map(|value| Choice {
            value,
            chosen: value == chosen.trim(),
        })
        .collect()
}

/// One row of the list.
struct Row {
    id: String,
    trace_id: String,
    created: String,
    created_at: String,
    record: FailureListRow,
    template: String,
}

#[derive(Template)]
#[template(path = "records.html")]
struct ListPage {
    chrome: Chrome,
    query: ListQuery,
    categories: Vec<Choice>,
    stages: Vec<Choice>,
    severities: Vec<Choice>,
    statuses: Vec<Choice>,
    facets: FailureFacets,
    rows: Vec<Row>,
    filtered: bool,
    first_page: bool,
    first_link: String,
    next_link: Option<String>,
}

/// `GET /ui/records`.
async fn list(
    State(app): State<App>,
    signed: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let filter = query.filter()?;
    let (mut records, facets) = app
        .store
        .run(move |conn| {
            let records = conn.failure_list(&filter, PAGE_SIZE + 1)?;
            let facets = conn.failure_facets(FACET_SAMPLE)?;
            Ok::<_, closedloop_store::StoreError>((records, facets))
        })
        .await?;
    let next_link = (records.len() > PAGE_SIZE).then(|| {
        records.truncate(PAGE_SIZE);
        query.link(&records.last().map(cursor_text).unwrap_or_default())
    });
    let now = now_s();
    let rows = records
        .into_iter()
        .map(|record| Row {
            id: failure_id(record.key),
            trace_id: hex::encode(record.key.trace_id),
            created: relative(record.created_s, now),
            created_at: format_rfc3339(record.created_s),
            template: match (&record.template_id, &record.template_version) {
                (Some(id), Some(version)) => format!("{id}@{version}"),
                (Some(id), None) => id.clone(),
                (None, Some(version)) => format!("@{version}"),
                (None, None) => String::new(),
            },
            record,
        })
        .collect();
    render(&ListPage {
        chrome: Chrome::new(&signed, "records", "Failure records"),
        categories: choices(
            FailureCategory::ALL.iter().map(|value| value.as_str()),
            &query.category,
        ),
        stages: choices(
            FailureStage::ALL.iter().map(|value| value.as_str()),
            &query.stage,
        ),
        severities: choices(
            FailureSeverity::ALL.iter().map(|value| value.as_str()),
            &query.severity,
        ),
        statuses: choices(
            TriageStatus::ALL.iter().map(|value| value.as_str()),
            &query.status,
        ),
        facets,
        rows,
        filtered: query.is_filtered(),
        first_page: given(&query.after).is_none(),
        first_link: query.link(""),
        next_link,
        query,
    })
}

/// A time shown both ways: relative to now, and as RFC 3339.
struct When {
    relative: String,
    absolute: String,
}

impl When {
    fn at(time_s: i64, now_s: i64) -> Self {
        Self {
            relative: relative(time_s, now_s),
            absolute: format_rfc3339(time_s),
        }
    }
}

/// One signal of the record's timeline.
struct Signal {
    when: When,
    feedback: RecordFeedback,
    value: Option<String>,
}

/// One revision of the record's history.
struct Revision {
    when: When,
    revision: FailureRevision,
}

/// One triage note.
struct Note {
    when: When,
    note: TriageNote,
}

/// The triage actions the page offers: the statuses the record is not in.
struct Action {
    status: &'static str,
    label: &'static str,
    key: &'static str,
    class: &'static str,
}

const ACTIONS: [Action; 4] = [
    Action {
        status: "acknowledged",
        label: "Acknowledge",
        key: "a",
        class: "primary",
    },
    Action {
        status: "resolved",
        label: "Resolve",
        key: "r",
        class: "good",
    },
    Action {
        status: "wont_fix",
        label: "Won't fix",
        key: "w",
        class: "bad",
    },
    Action {
        status: "open",
        label: "Reopen",
        key: "",
        class: "",
    },
];

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    chrome: Chrome,
    id: String,
    trace_id: String,
    span_id: String,
    detail: FailureDetail,
    created: When,
    updated: When,
    due: Option<When>,
    overdue: bool,
    revisions: Vec<Revision>,
    first_kept: i64,
    signals: Vec<Signal>,
    notes: Vec<Note>,
    trace_link: Option<String>,
    actions: Vec<&'static Action>,
    /// The answer's text: the text parts of the captured output messages, or the captured
    /// output as it is when it is not GenAI messages.
    answer: Option<String>,
}

/// The text parts of GenAI output messages (`[{"role": ..., "parts": [{"type": "text",
/// "content": ...}]}]`), one paragraph each; `None` when `output` is not such messages.
fn message_text(output: &str) -> Option<String> {
    let messages: Vec<serde_json::Value> = serde_json::from_str(output).ok()?;
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|message| message.get("parts")?.as_array())
        .flatten()
        .filter(|part| part.get("type").and_then(|kind| kind.as_str()) == Some("text"))
        .filter_map(|part| part.get("content")?.as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// The trace link from the `ui.trace_url` template; none unless it is an http(s) URL.
fn trace_link(template: &str, key: SpanRef) -> Option<String> {
    let lower = template.trim_start().to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    Some(
        template
            .replace("{trace_id}", &hex::encode(key.trace_id))
            .replace("{span_id}", &hex::encode(key.span_id)),
    )
}

/// The record id of a path, or a 400 page.
fn record_key(id: &str) -> Result<SpanRef, PageError> {
    parse_failure_id(id).ok_or_else(|| {
        PageError::BadRequest(format!(
            "{id:?} is not a failure record id (fr_<trace id>_<span id>)"
        ))
    })
}

/// `GET /ui/records/{id}`.
async fn record(
    State(app): State<App>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let key = record_key(&id)?;
    let found = app
        .store
        .run(move |conn| {
            let Some(detail) = conn.failure_detail(key)? else {
                return Ok::<_, closedloop_store::StoreError>(None);
            };
            let revisions = conn.failure_revisions(key)?;
            let feedback = conn.record_feedback(key)?;
            let notes = conn.triage_notes(key)?;
            Ok(Some((detail, revisions, feedback, notes)))
        })
        .await?;
    let Some((detail, revisions, feedback, notes)) = found else {
        return Err(PageError::NotFound(format!("no failure record {id}")));
    };
    let now = now_s();
    let record = &detail.record;
    let overdue = matches!(
        record.status,
        TriageStatus::Open | TriageStatus::Acknowledged
    ) && record.due_s.is_some_and(|due| due <= now);
    let actions = ACTIONS
        .iter()
        .filter(|action| action.status != record.status.as_str())
        .collect();
    let answer = detail
        .response
        .as_ref()
        .and_then(|response| response.content.output.as_deref())
        .map(|output| message_text(output).unwrap_or_else(|| output.to_owned()));
    render(&RecordPage {
        chrome: Chrome::new(&signed, "records", format!("Record {id}")),
        answer,
        trace_id: hex::encode(key.trace_id),
        span_id: hex::encode(key.span_id),
        created: When::at(record.created_s, now),
        updated: When::at(record.updated_s, now),
        due: record.due_s.map(|due| When::at(due, now)),
        overdue,
        first_kept: revisions.first().map_or(0, |revision| revision.revision),
        revisions: revisions
            .into_iter()
            .map(|revision| Revision {
                when: When::at(revision.time_s, now),
                revision,
            })
            .collect(),
        signals: feedback
            .into_iter()
            .map(|feedback| Signal {
                when: When::at(feedback.time_ns.div_euclid(1_000_000_000), now),
                value: feedback.value.map(|value| format!("{value}")),
                feedback,
            })
            .collect(),
        notes: notes
            .into_iter()
            .map(|note| Note {
                when: When::at(note.time_s, now),
                note,
            })
            .collect(),
        trace_link: app
            .trace_url
            .as_deref()
            .and_then(|template| trace_link(template, key)),
        actions,
        id,
        detail,
    })
}

/// A status change from the record page.
#[derive(Debug, Deserialize)]
struct StatusForm {
    status: String,
    #[serde(default)]
    note: String,
}

/// A reassignment from the record page.
#[derive(Debug, Deserialize)]
struct OwnerForm {
    owner: String,
    #[serde(default)]
    note: String,
}

/// The signed-in user who makes a change.
fn actor(user: Option<String>) -> Result<String, PageError> {
    user.ok_or(PageError::Unauthenticated(
        "sign in to change a failure record",
    ))
}

/// `POST /ui/records/{id}/status`: acknowledge, resolve, won't fix or reopen, as the
/// signed-in user, then back to the record.
async fn set_status(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm { form, user }: CsrfForm<StatusForm>,
) -> Result<Response, PageError> {
    let status: TriageStatus = form
        .status
        .parse()
        .map_err(|_| PageError::BadRequest(format!("unknown status {:?}", form.status)))?;
    let note = given(&form.note);
    change(&app, &id, user, move |conn, settings, record, actor| {
        triage::set_status(conn, settings, record, status, note.as_deref(), Some(actor))
    })
    .await
}

/// `POST /ui/records/{id}/owner`: gives the record to another owner, as the signed-in user.
async fn reassign(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm { form, user }: CsrfForm<OwnerForm>,
) -> Result<Response, PageError> {
    let Some(owner) = given(&form.owner) else {
        return Err(PageError::BadRequest("name the new owner".into()));
    };
    let note = given(&form.note);
    change(&app, &id, user, move |conn, settings, record, actor| {
        triage::reassign(conn, settings, record, &owner, note.as_deref(), Some(actor))
    })
    .await
}

/// Makes a triage change of the record `id` as the signed-in `user` (a new revision), then
/// sends the browser back to the record.
async fn change(
    app: &App,
    id: &str,
    user: Option<String>,
    change: impl FnOnce(
            &mut closedloop_store::Connection,
            &closedloop_engine::direct::DirectSettings,
            &str,
            &str,
        ) -> Result<i64, triage::TriageError>
        + Send
        + 'static,
) -> Result<Response, PageError> {
    let actor = actor(user)?;
    record_key(id)?;
    let settings = app.settings.clone();
    let record = id.to_owned();
    let revision = app
        .store
        .run(move |conn| change(conn, &settings, &record, &actor))
        .await?;
    tracing::info!(record = %id, revision, "Failure record changed from the console.");
    Ok(Redirect::to(&format!("/ui/records/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_the_form_are_utc() {
        assert_eq!(
            form_time("2026-12-01", "since", false).unwrap(),
            parse_rfc3339("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            form_time("2026-12-01", "until", true).unwrap(),
            parse_rfc3339("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            form_time("2026-12-01T10:30", "since", false).unwrap(),
            parse_rfc3339("2026-12-01T10:30:00Z")
        );
        assert!(form_time("yesterday", "since", false).is_err());
        assert_eq!(form_time(" ", "since", false).unwrap(), None);
    }

    #[test]
    fn page_links_keep_the_filters_and_drop_empty_fields() {
        let query = ListQuery {
            category: "missing_context".into(),
            owner: "search team".into(),
            ..ListQuery::default()
        };
        assert_eq!(
            query.link("100.ab"),
            "/ui/records?category=missing_context&owner=search+team&after=100.ab"
        );
        assert_eq!(ListQuery::default().link(""), "/ui/records");
        assert!(query.is_filtered());
        assert!(!ListQuery::default().is_filtered());
    }

    #[test]
    fn the_answer_is_the_text_of_the_output_messages() {
        let output = r#"[{"role":"assistant","parts":[{"type":"text","content":"Open Settings."},
            {"type":"tool_call","name":"search"},{"type":"text","content":"Then Security."}]}]"#;
        assert_eq!(
            message_text(output).as_deref(),
            Some("Open Settings.\n\nThen Security.")
        );
        assert_eq!(message_text("Open Settings."), None);
        assert_eq!(message_text("[]"), None);
    }

    #[test]
    fn the_trace_link_names_the_record_span() {
        let key = SpanRef::new([0xab; 16], [0x01; 8]).unwrap();
        assert_eq!(
            trace_link("http://jaeger:16686/trace/{trace_id}?uiFind={span_id}", key),
            Some(format!(
                "http://jaeger:16686/trace/{}?uiFind=0101010101010101",
                "ab".repeat(16)
            ))
        );
        assert_eq!(trace_link("javascript:alert('{trace_id}')", key), None);
    }
}
