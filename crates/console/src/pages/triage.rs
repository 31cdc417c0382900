//! The triage board: the open and acknowledged failure records by owner, overdue first, due
//! times relative to now. One bounded read: the counts of every owner, and the most urgent
//! records ([`BOARD_LIMIT`] at most).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use closedloop_engine::failure_span::failure_id;
use closedloop_engine::vocab::TriageStatus;
use closedloop_store::records::TriageRecord;

use super::{now_s, relative, render, Chrome};
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::App;

/// The most records the board shows (the counts cover them all).
const BOARD_LIMIT: usize = 300;

pub(super) fn routes() -> Router<App> {
    Router::new().route("/ui/triage", get(board))
}

/// One record on the board.
struct Card {
    id: String,
    record: TriageRecord,
    overdue: bool,
    due: String,
}

/// One owner's column: their records, overdue first, then by due time.
struct Lane {
    owner: String,
    active: u64,
    overdue: u64,
    cards: Vec<Card>,
}

impl Lane {
    /// How many of the owner's records the board leaves out.
    fn hidden(&self) -> u64 {
        self.active.saturating_sub(self.cards.len() as u64)
    }

    /// The record list of the owner's records.
    fn records_link(&self) -> String {
        format!("/ui/records?owner={}", crate::auth::urlencode(&self.owner))
    }
}

#[derive(Template)]
#[template(path = "triage.html")]
struct BoardPage {
    chrome: Chrome,
    lanes: Vec<Lane>,
    total: u64,
    overdue: u64,
}

/// `GET /ui/triage`.
async fn board(State(app): State<App>, signed: SignedIn) -> Result<Response, PageError> {
    let now = now_s();
    let board = app
        .store
        .run(move |conn| conn.triage_board(now, BOARD_LIMIT))
        .await?;
    let mut lanes: BTreeMap<String, Lane> = board
        .lanes
        .into_iter()
        .map(|lane| {
            let owner = lane.owner.unwrap_or_default();
            (
                owner.clone(),
                Lane {
                    owner,
                    active: lane.active,
                    overdue: lane.overdue,
                    cards: Vec::new(),
                },
            )
        })
        .collect();
    // The records come most urgent first (overdue, then by due time, then without one).
    for record in board.records {
        let overdue = matches!(
            record.status,
            TriageStatus::Open | TriageStatus::Acknowledged
        ) && record.due_s.is_some_and(|due| due <= now);
        let due = record.due_s.map_or_else(
            || "no due time".to_owned(),
            |due_s| format!("due {}", relative(due_s, now)),
        );
        let owner = record.owner.clone().unwrap_or_default();
        let lane = lanes.entry(owner.clone()).or_insert_with(|| Lane {
            owner,
            active: 0,
            overdue: 0,
            cards: Vec::new(),
        });
        lane.cards.push(Card {
            id: failure_id(record.key),
            record,
            overdue,
            due,
        });
    }
    let mut lanes: Vec<Lane> = lanes.into_values().collect();
    lanes.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then_with(|| a.owner.cmp(&b.owner))
    });
    let total = lanes.iter().map(|lane| lane.active).sum();
    let overdue = lanes.iter().map(|lane| lane.overdue).sum();
    render(&BoardPage {
        chrome: Chrome::new(&signed, "triage", "Triage"),
        lanes,
        total,
        overdue,
    })
}
