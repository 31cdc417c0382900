//! The triage board: the open and acknowledged failure records by owner, overdue first, due
//! times relative to now.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use closedloop_commands::triage::{self, ListFilter, TriageItem};
use closedloop_engine::timefmt::parse_rfc3339;

use super::{now_s, relative, render, Chrome};
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::App;

pub(super) fn routes() -> Router<App> {
    Router::new().route("/ui/triage", get(board))
}

/// One record on the board.
struct Card {
    item: TriageItem,
    due: String,
}

/// One owner's column: their records, overdue first, then by due time.
struct Lane {
    owner: String,
    overdue: usize,
    cards: Vec<Card>,
}

#[derive(Template)]
#[template(path = "triage.html")]
struct BoardPage {
    chrome: Chrome,
    lanes: Vec<Lane>,
    total: usize,
    overdue: usize,
}

/// `GET /ui/triage`.
async fn board(State(app): State<App>, signed: SignedIn) -> Result<Response, PageError> {
    let now = now_s();
    let items = app
        .store
        .run(move |conn| triage::list(conn, &ListFilter::new(now)))
        .await?;
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    for item in items {
        if !matches!(item.status.as_str(), "open" | "acknowledged") {
            continue;
        }
        let owner = item.owner.clone().unwrap_or_default();
        let due = item
            .due_time
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(
                || "no due time".to_owned(),
                |due_s| format!("due {}", relative(due_s, now)),
            );
        let lane = lanes.entry(owner.clone()).or_insert_with(|| Lane {
            owner,
            overdue: 0,
            cards: Vec::new(),
        });
        lane.overdue += usize::from(item.overdue);
        lane.cards.push(Card { item, due });
    }
    let mut lanes: Vec<Lane> = lanes.into_values().collect();
    for lane in &mut lanes {
        // `list` is ordered by due time already; overdue records go first.
        lane.cards.sort_by_key(|card| !card.item.overdue);
    }
    lanes.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then_with(|| a.owner.cmp(&b.owner))
    });
    let total = lanes.iter().map(|lane| lane.cards.len()).sum();
    let overdue = lanes.iter().map(|lane| lane.overdue).sum();
    render(&BoardPage {
        chrome: Chrome::new(&signed, "triage", "Triage"),
        lanes,
        total,
        overdue,
    })
}
