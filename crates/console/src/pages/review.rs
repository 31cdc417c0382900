//! The review queue: the day's sample, one answer at a time, keyboard first.
//!
//! `GET /ui/review` shows the first unlabelled item of the day (`?day=YYYY-MM-DD`, by default
//! the most recent sampled day that still has unlabelled items, else the most recent day);
//! `GET /ui/review/{id}` (or `?item=ID`) shows one item. `POST /ui/review/{id}/label` labels
//! it through [`review::label`], with the signed-in user as the reviewer, so a bad label makes
//! or updates the response's failure record through the same join as `closedloop review
//! label`; the answer is a 303 to the day's next unlabelled item.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use closedloop_commands::review::{self, Label, ReviewFilter, ReviewItem};
use closedloop_engine::timefmt::{parse_day, parse_rfc3339};
use closedloop_engine::vocab::FailureCategory;
use closedloop_store::records::ReviewDayProgress;
use serde::Deserialize;

use super::{now_s, relative, render, Chrome};
use crate::auth::{urlencode, CsrfForm, SignedIn};
use crate::error::PageError;
use crate::App;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/ui/review", get(queue))
        .route("/ui/review/{id}", get(item_page))
        .route("/ui/review/{id}/label", post(label))
}

/// The width of the progress bar's SVG view box.
const BAR_WIDTH: u64 = 1_000;

/// A sampled day in the day picker.
struct DayChoice {
    day: String,
    items: u64,
    labelled: u64,
    selected: bool,
}

/// A failure category with the digit that chooses it.
struct CategoryChoice {
    digit: usize,
    value: &'static str,
    words: String,
    checked: bool,
}

/// The item on screen and where it sits in its day's list.
struct ItemView {
    item: ReviewItem,
    /// 1-based position in the day's list.
    position: usize,
    previous: Option<i64>,
    next: Option<i64>,
    /// The next unlabelled item after this one (wrapping around), if any other.
    skip: Option<i64>,
    received_ago: Option<String>,
    /// The answer as text: the text parts of the output messages when they are JSON.
    answer: Option<String>,
    /// Whether `answer` was read out of the raw output messages (shown on request).
    answer_extracted: bool,
    /// The response is no longer stored (pruned): only what the queue kept is known.
    pruned: bool,
    categories: Vec<CategoryChoice>,
}

/// What the last label did, shown above the next item.
struct Notice {
    id: i64,
    label: String,
    category: Option<String>,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    days: Vec<DayChoice>,
    /// The day on screen, if any day was sampled.
    day: Option<String>,
    total: u64,
    reviewed: u64,
    /// The done part of the progress bar, in view-box units.
    bar: u64,
    view: Option<ItemView>,
    notice: Option<Notice>,
    /// The first item of the day, for a day that is all reviewed.
    first: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct QueueQuery {
    day: Option<String>,
    item: Option<String>,
    labelled: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ItemQuery {
    labelled: Option<String>,
}

fn parse_id(text: &str) -> Result<i64, PageError> {
    text.trim()
        .parse()
        .map_err(|_| PageError::BadRequest(format!("not a review item id: {text:?}")))
}

/// `GET /ui/review`.
async fn queue(
    State(app): State<App>,
    signed: SignedIn,
    Query(query): Query<QueueQuery>,
) -> Result<Response, PageError> {
    let labelled = query.labelled.as_deref().map(parse_id).transpose()?;
    if let Some(item) = query.item.as_deref().filter(|item| !item.is_empty()) {
        return show(app, signed, Target::Item(parse_id(item)?), labelled).await;
    }
    let day = match query.day.filter(|day| !day.is_empty()) {
        Some(day) if parse_day(&day).is_some() => Some(day),
        Some(day) => return Err(PageError::BadRequest(format!("not a day: {day:?}"))),
        None => None,
    };
    show(app, signed, Target::Day(day), labelled).await
}

/// `GET /ui/review/{id}`.
async fn item_page(
    State(app): State<App>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ItemQuery>,
) -> Result<Response, PageError> {
    let labelled = query.labelled.as_deref().map(parse_id).transpose()?;
    show(app, signed, Target::Item(parse_id(&id)?), labelled).await
}

/// Which item a page shows.
enum Target {
    /// This item.
    Item(i64),
    /// The first unlabelled item of this day (or of the default day).
    Day(Option<String>),
}

/// What a page reads from the store.
struct Loaded {
    days: Vec<ReviewDayProgress>,
    day: Option<String>,
    items: Vec<ReviewItem>,
    current: Option<usize>,
}

fn load(
    conn: &mut closedloop_store::Connection,
    target: Target,
) -> Result<Loaded, review::ReviewError> {
    let days = conn.review_day_progress()?;
    let (day, wanted) = match target {
        Target::Item(id) => {
            let item = review::show(conn, id)?;
            (Some(item.day), Some(id))
        }
        Target::Day(Some(day)) => (Some(day), None),
        Target::Day(None) => {
            let day = days
                .iter()
                .find(|day| day.labelled < day.items)
                .or(days.first())
                .map(|day| day.day.clone());
            (day, None)
        }
    };
    let items = match &day {
        Some(day) => review::list(
            conn,
            &ReviewFilter {
                day: Some(day.clone()),
                unlabelled: false,
            },
        )?,
        None => Vec::new(),
    };
    let current = match wanted {
        Some(id) => items.iter().position(|item| item.id == id),
        None => items.iter().position(|item| item.label.is_none()),
    };
    Ok(Loaded {
        days,
        day,
        items,
        current,
    })
}

async fn show(
    app: App,
    signed: SignedIn,
    target: Target,
    labelled: Option<i64>,
) -> Result<Response, PageError> {
    let Loaded {
        days,
        day,
        items,
        current,
    } = app.store.run(move |conn| load(conn, target)).await?;
    if let Some(day) = &day {
        if !days.iter().any(|sampled| &sampled.day == day) {
            return Err(PageError::NotFound(format!("{day} has no review sample")));
        }
    }
    let total = items.len() as u64;
    let reviewed = items.iter().filter(|item| item.label.is_some()).count() as u64;
    let notice = labelled.and_then(|id| {
        let item = items.iter().find(|item| item.id == id)?;
        Some(Notice {
            id,
            label: item.label.clone()?,
            category: item.category.clone(),
        })
    });
    let first = items.first().map(|item| item.id);
    let view = current.map(|at| item_view(&items, at));
    let title = match &day {
        Some(day) => format!("Review {day}"),
        None => "Review".to_owned(),
    };
    render(&ReviewPage {
        chrome: Chrome::new(&signed, "review", title),
        days: days
            .into_iter()
            .map(|progress| DayChoice {
                selected: day.as_deref() == Some(progress.day.as_str()),
                day: progress.day,
                items: progress.items,
                labelled: progress.labelled,
            })
            .collect(),
        day,
        total,
        reviewed,
        bar: (reviewed * BAR_WIDTH).checked_div(total).unwrap_or(0),
        view,
        notice,
        first,
    })
}

fn item_view(items: &[ReviewItem], at: usize) -> ItemView {
    let item = items[at].clone();
    let skip = items[at + 1..]
        .iter()
        .chain(&items[..at])
        .find(|other| other.label.is_none())
        .map(|other| other.id);
    let received_ago = item
        .received
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|received_s| relative(received_s, now_s()));
    let answer = item.output.as_deref().map(answer_text);
    let answer_extracted = answer.as_deref() != item.output.as_deref();
    let chosen = item.category.as_deref();
    let categories = FailureCategory::ALL
        .iter()
        .take(9)
        .enumerate()
        .map(|(index, category)| CategoryChoice {
            digit: index + 1,
            value: category.as_str(),
            words: category.as_str().replace('_', " "),
            checked: chosen == Some(category.as_str()),
        })
        .collect();
    ItemView {
        position: at + 1,
        previous: at.checked_sub(1).map(|before| items[before].id),
        next: items.get(at + 1).map(|after| after.id),
        skip,
        received_ago,
        answer,
        answer_extracted,
        pruned: item.received.is_none(),
        categories,
        item,
    }
}

/// The text of captured output messages: the `content` of their text parts when they are
/// GenAI messages in JSON (`[{"role": .., "parts": [{"type": "text", "content": ..}]}]`),
/// the strings of a JSON array of strings, else the captured text as it is.
fn answer_text(output: &str) -> String {
    use serde_json::Value;
    let Ok(Value::Array(messages)) = serde_json::from_str::<Value>(output) else {
        return output.to_owned();
    };
    let mut texts = Vec::new();
    for message in &messages {
        match message {
            Value::String(text) => texts.push(text.clone()),
            Value::Object(message) => {
                if let Some(Value::String(text)) = message.get("content") {
                    texts.push(text.clone());
                }
                for part in message
                    .get("parts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let is_text = part.get("type").and_then(Value::as_str) == Some("text");
                    if let (true, Some(text)) =
                        (is_text, part.get("content").and_then(Value::as_str))
                    {
                        texts.push(text.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    if texts.is_empty() {
        output.to_owned()
    } else {
        texts.join("\n\n")
    }
}

#[derive(Debug, Deserialize)]
struct LabelForm {
    /// `good` or `bad` (the button pressed).
    verdict: Option<String>,
    /// A failure category, or empty for none.
    category: Option<String>,
    expected: Option<String>,
    note: Option<String>,
}

/// A form field's text, `None` when empty.
fn text_field(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// `POST /ui/review/{id}/label`: labels the item as the signed-in user, then a 303 to the
/// day's next unlabelled item.
async fn label(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm { form, user }: CsrfForm<LabelForm>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let reviewer = user.ok_or(PageError::Unauthenticated("sign in to label answers"))?;
    let good = match form.verdict.as_deref() {
        Some("good") => true,
        Some("bad") => false,
        _ => {
            return Err(PageError::BadRequest(
                "choose good or bad (press g or b)".into(),
            ))
        }
    };
    let category = match text_field(form.category) {
        Some(category) if !good => Some(
            category
                .parse::<FailureCategory>()
                .map_err(|_| PageError::BadRequest(format!("no category {category:?}")))?,
        ),
        // A good answer has no failure category.
        _ => None,
    };
    let label = Label::new(good)
        .with_category(category)
        .with_expected(text_field(form.expected))
        .with_note(text_field(form.note))
        .with_reviewer(Some(reviewer.clone()));
    let settings = app.settings.clone();
    let (day, next) = app
        .store
        .run(move |conn| {
            let labelled = review::label(conn, &settings, id, &label)?;
            let unlabelled = review::list(
                conn,
                &ReviewFilter {
                    day: Some(labelled.day.clone()),
                    unlabelled: true,
                },
            )?;
            let next = unlabelled
                .iter()
                .find(|item| item.id > id)
                .or(unlabelled.first())
                .map(|item| item.id);
            Ok::<_, review::ReviewError>((labelled.day, next))
        })
        .await?;
    tracing::info!(item = id, reviewer = %reviewer, good, "Review label given in the console.");
    let target = match next {
        Some(next) => format!("/ui/review/{next}?labelled={id}"),
        None => format!("/ui/review?day={}&labelled={id}", urlencode(&day)),
    };
    Ok(Redirect::to(&target).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_text_reads_the_text_parts_of_genai_messages() {
        let messages = r#"[{"role":"assistant","parts":[{"type":"text","content":"Open Settings."},{"type":"tool_call","name":"x"}]},{"role":"assistant","content":"Then Security."}]"#;
        assert_eq!(answer_text(messages), "Open Settings.\n\nThen Security.");
        assert_eq!(answer_text(r#"["one","two"]"#), "one\n\ntwo");
        assert_eq!(answer_text("plain text"), "plain text");
        assert_eq!(
            answer_text(r#"[{"role":"assistant"}]"#),
            r#"[{"role":"assistant"}]"#
        );
    }
}
