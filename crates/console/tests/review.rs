//! The review queue page: which day and item it opens on, the day's progress, next /
//! previous / skip, labels given as the signed-in user, and what it shows of an answer.

mod support;

use axum::http::StatusCode;
use closedloop_commands::review::{self, Label, ReviewConfig, ReviewFilter, ReviewItem};
use closedloop_console::UiConfig;
use closedloop_engine::direct::DirectSettings;
use closedloop_engine::timefmt::parse_day;
use closedloop_engine::vocab::FailureCategory;
use closedloop_store::records::{Content, Response, SpanRef, Template};
use closedloop_store::{Access, Connection};
use support::TestConsole;

const OLDER: &str = "2026-11-29";
const NEWER: &str = "2026-11-30";

/// A response received `offset_s` into `day`, with its query and answer captured when given.
fn answer(n: u8, query: Option<&str>, output: Option<&str>) -> Response {
    Response {
        template: Template {
            id: Some("answer_with_context".into()),
            version: Some("v3".into()),
            ..Template::default()
        },
        model: Some("gpt-4o".into()),
        chunk_ids: Some(vec![
            format!("kb-reset-password#{n}"),
            "kb-account-locked#0".into(),
        ]),
        content: Content {
            input: None,
            query: query.map(str::to_owned),
            output: output.map(str::to_owned),
        },
        ..Response::default()
    }
}

fn span(n: u8) -> SpanRef {
    SpanRef {
        trace_id: [n; 16],
        span_id: [n; 8],
    }
}

/// Stores `responses` on `day`, one a minute, and draws the day's sample (all of them).
fn sampled_day(conn: &mut Connection, day: &str, responses: &[(u8, Response)]) {
    let days = parse_day(day).unwrap();
    for (at, (n, response)) in responses.iter().enumerate() {
        let received_s = days * 86_400 + 3_600 + 60 * at as i64;
        assert!(conn
            .insert_response(response, span(*n), received_s, true)
            .unwrap());
    }
    let config = ReviewConfig {
        daily_sample_size: 10,
        ..ReviewConfig::default()
    };
    let outcome = review::sample_day(
        conn,
        &config,
        closedloop_store::ContentRetention::default(),
        days,
        Some(7),
    )
    .unwrap();
    assert_eq!(outcome.sampled, responses.len());
}

fn items(conn: &mut Connection, day: &str) -> Vec<ReviewItem> {
    review::list(
        conn,
        &ReviewFilter {
            day: Some(day.into()),
            unlabelled: false,
        },
    )
    .unwrap()
}

fn store_of(console: &TestConsole) -> Connection {
    Connection::open(&console.store, Access::Command).unwrap()
}

fn captured(n: u8) -> (u8, Response) {
    (
        n,
        answer(
            n,
            Some("How do I reset my password?"),
            Some("Open Settings, then Security, then Reset password."),
        ),
    )
}

#[tokio::test]
async fn the_queue_opens_on_the_latest_day_with_unlabelled_answers_and_counts_progress() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        sampled_day(conn, OLDER, &[captured(1), captured(2), captured(3)]);
        sampled_day(conn, NEWER, &[captured(4), captured(5)]);
        for item in items(conn, NEWER) {
            review::label(
                conn,
                &DirectSettings::default(),
                item.id,
                &Label::new(true).with_reviewer(Some("bo".into())),
            )
            .unwrap();
        }
    });
    console.sign_in("ana", "").await;
    let (older, newer) = {
        let mut conn = store_of(&console);
        (items(&mut conn, OLDER), items(&mut conn, NEWER))
    };

    // The newer day is all reviewed: the queue opens on the older day's first item.
    let page = console.get("/ui/review").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Review <span class=\"muted\">2026-11-29</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("0 of 3 reviewed"), "{}", page.body);
    assert!(page.body.contains("Item 1 of 3"), "{}", page.body);
    assert!(page
        .body
        .contains(&format!("action=\"/ui/review/{}/label\"", older[0].id)));
    // The day picker lists both days, newest first, with their progress.
    let newer_at = page
        .body
        .find("2026-11-30 · 2 of 2 reviewed")
        .expect("newer day");
    let older_at = page
        .body
        .find("2026-11-29 · 0 of 3 reviewed")
        .expect("older day");
    assert!(newer_at < older_at);
    // The progress bar: nothing done yet.
    assert!(page
        .body
        .contains("class=\"done\" x=\"0\" y=\"0\" width=\"0\""));

    // A day picked: all reviewed, said so, with a way back through it.
    let done = console.get("/ui/review?day=2026-11-30").await;
    assert!(done.body.contains("2 of 2 reviewed"), "{}", done.body);
    assert!(
        done.body
            .contains("All 2 items of 2026-11-30 are reviewed."),
        "{}",
        done.body
    );
    assert!(done
        .body
        .contains("width=\"1000\" height=\"8\" rx=\"4\"></rect>\n    </svg>"));
    assert!(done
        .body
        .contains(&format!("href=\"/ui/review/{}\"", newer[0].id)));

    // One item by id, either way; bad ids and days are refused.
    for path in [
        format!("/ui/review/{}", older[2].id),
        format!("/ui/review?item={}", older[2].id),
    ] {
        let page = console.get(&path).await;
        assert!(page.body.contains("Item 3 of 3"), "{path}: {}", page.body);
    }
    assert_eq!(
        console.get("/ui/review?day=yesterday").await.status,
        StatusCode::BAD_REQUEST
    );
    let unsampled = console.get("/ui/review?day=2026-11-28").await;
    assert_eq!(unsampled.status, StatusCode::NOT_FOUND);
    assert!(unsampled.body.contains("2026-11-28 has no review sample"));
    assert_eq!(
        console.get("/ui/review/abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        console.get("/ui/review/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_empty_queue_says_how_a_sample_is_drawn() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    console.sign_in("ana", "").await;
    let page = console.get("/ui/review").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No review sample yet"), "{}", page.body);
}

#[tokio::test]
async fn next_previous_and_skip_move_through_the_day() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        sampled_day(
            conn,
            NEWER,
            &[captured(1), captured(2), captured(3), captured(4)],
        );
        let second = items(conn, NEWER)[1].id;
        review::label(
            conn,
            &DirectSettings::default(),
            second,
            &Label::new(true).with_reviewer(Some("bo".into())),
        )
        .unwrap();
    });
    console.sign_in("ana", "").await;
    let ids: Vec<i64> = items(&mut store_of(&console), NEWER)
        .iter()
        .map(|item| item.id)
        .collect();
    let link = |id: i64, key: &str| format!("href=\"/ui/review/{id}\" data-key=\"{key}\"");

    let first = console.get(&format!("/ui/review/{}", ids[0])).await;
    assert!(first.body.contains("1 of 4 reviewed"), "{}", first.body);
    assert!(
        first.body.contains(&link(ids[1], "j ArrowRight")),
        "{}",
        first.body
    );
    assert!(
        !first.body.contains("data-key=\"k ArrowLeft\""),
        "no previous item"
    );
    // Skip passes over the labelled second item.
    assert!(first.body.contains(&link(ids[2], "s")), "{}", first.body);

    let second = console.get(&format!("/ui/review/{}", ids[1])).await;
    assert!(second.body.contains(&link(ids[0], "k ArrowLeft")));
    assert!(second.body.contains(&link(ids[2], "j ArrowRight")));
    assert!(
        second.body.contains("<strong>bo</strong>"),
        "the label and who gave it: {}",
        second.body
    );

    // From the last item, skip wraps around to the first unlabelled one; no next.
    let last = console.get(&format!("/ui/review/{}", ids[3])).await;
    assert!(last.body.contains("Item 4 of 4"));
    assert!(last.body.contains(&link(ids[2], "k ArrowLeft")));
    assert!(!last.body.contains("data-key=\"j ArrowRight\""));
    assert!(last.body.contains(&link(ids[0], "s")), "{}", last.body);
    // The keys are always listed on the page.
    for key in [
        "<kbd>g</kbd> good",
        "<kbd>b</kbd> bad",
        "<kbd>s</kbd> skip",
        "<kbd>?</kbd>",
    ] {
        assert!(last.body.contains(key), "{key}");
    }
    // Every category with its digit.
    for (digit, category) in FailureCategory::ALL.iter().enumerate() {
        let radio = format!("value=\"{}\" data-key=\"{}\"", category.as_str(), digit + 1);
        assert!(last.body.contains(&radio), "{radio}");
    }
}

#[tokio::test]
async fn a_label_is_given_as_the_signed_in_user_and_moves_to_the_next_unlabelled_item() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        sampled_day(conn, NEWER, &[captured(1), captured(2), captured(3)]);
    });
    let csrf = console.sign_in("ana", "").await;
    let ids: Vec<i64> = items(&mut store_of(&console), NEWER)
        .iter()
        .map(|item| item.id)
        .collect();
    let label_path = |id: i64| format!("/ui/review/{id}/label");

    // Without the session's token: refused, nothing stored.
    let forged = console
        .post(&label_path(ids[1]), &[("verdict", "bad")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Neither good nor bad: refused.
    let undecided = console
        .post(
            &label_path(ids[1]),
            &[("csrf", &csrf), ("category", "format")],
        )
        .await;
    assert_eq!(undecided.status, StatusCode::BAD_REQUEST);
    let unknown = console
        .post(
            &label_path(ids[1]),
            &[("csrf", &csrf), ("verdict", "bad"), ("category", "rude")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        review::show(&mut store_of(&console), ids[1]).unwrap().label,
        None
    );

    // A bad label on the second item, with a reviewer field that must be ignored.
    let done = console
        .post(
            &label_path(ids[1]),
            &[
                ("csrf", &csrf),
                ("verdict", "bad"),
                ("category", "hallucination"),
                ("expected", "  Settings > Security > Reset password.  "),
                ("note", "cites the old flow"),
                ("reviewer", "mallory"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    // The next unlabelled item after it.
    assert_eq!(
        done.location(),
        format!("/ui/review/{}?labelled={}", ids[2], ids[1])
    );
    let stored = review::show(&mut store_of(&console), ids[1]).unwrap();
    assert_eq!(stored.reviewer.as_deref(), Some("ana"));
    assert_eq!(stored.label.as_deref(), Some("bad"));
    assert_eq!(stored.category.as_deref(), Some("hallucination"));
    assert_eq!(
        stored.expected.as_deref(),
        Some("Settings > Security > Reset password.")
    );
    assert_eq!(stored.note.as_deref(), Some("cites the old flow"));
    let failure = stored
        .failure_id
        .clone()
        .expect("a bad label makes a record");

    let next = console.get(done.location()).await;
    assert!(next.body.contains("1 of 3 reviewed"), "{}", next.body);
    assert!(next.body.contains("id=\"saved\""), "{}", next.body);
    // The labelled item shows its label, who gave it, and its failure record.
    let again = console.get(&format!("/ui/review/{}", ids[1])).await;
    assert!(
        again.body.contains("<strong>ana</strong>"),
        "{}",
        again.body
    );
    assert!(!again.body.contains("mallory"));
    assert!(again
        .body
        .contains(&format!("href=\"/ui/records/{failure}\"")));
    assert!(again
        .body
        .contains("value=\"hallucination\" data-key=\"3\" checked"));
    assert!(again.body.contains("cites the old flow</textarea>"));

    // The third item good (a category sent along is dropped): the next unlabelled one wraps
    // around to the first.
    let good = console
        .post(
            &label_path(ids[2]),
            &[("csrf", &csrf), ("verdict", "good"), ("category", "format")],
        )
        .await;
    assert_eq!(
        good.location(),
        format!("/ui/review/{}?labelled={}", ids[0], ids[2])
    );
    let stored = review::show(&mut store_of(&console), ids[2]).unwrap();
    assert_eq!(
        (stored.label.as_deref(), stored.category),
        (Some("good"), None)
    );
    assert_eq!(stored.failure_id, None);

    // Relabelling is allowed; the last unlabelled item done, the day is said to be done.
    console
        .post(&label_path(ids[0]), &[("csrf", &csrf), ("verdict", "good")])
        .await;
    let relabel = console
        .post(&label_path(ids[1]), &[("csrf", &csrf), ("verdict", "good")])
        .await;
    assert_eq!(
        relabel.location(),
        format!("/ui/review?day=2026-11-30&labelled={}", ids[1])
    );
    let day = console.get(relabel.location()).await;
    assert!(day.body.contains("3 of 3 reviewed"), "{}", day.body);
    assert!(day.body.contains("All 3 items of 2026-11-30 are reviewed."));
    assert_eq!(
        review::show(&mut store_of(&console), ids[1])
            .unwrap()
            .label
            .as_deref(),
        Some("good")
    );
}

#[tokio::test]
async fn content_not_captured_is_said_plainly_with_what_is_known() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        sampled_day(conn, NEWER, &[(1, answer(1, None, None))]);
    });
    console.sign_in("ana", "").await;
    let page = console.get("/ui/review").await;
    assert!(
        page.body.contains(
            "The query and answer were not captured: the application did not opt in to \
             content capture, or the store dropped it."
        ),
        "{}",
        page.body
    );
    for known in [
        "<code>answer_with_context</code>",
        "<span class=\"badge\">v3</span>",
        "gpt-4o",
        "<li><code>kb-reset-password#1</code></li><li><code>kb-account-locked#0</code></li>",
        "2026-11-30T01:00:00Z",
        "uniform",
        &hex::encode([1u8; 16]),
    ] {
        assert!(page.body.contains(known), "{known}: {}", page.body);
    }
    assert!(!page.body.contains("id=\"answer\""));
}

#[tokio::test]
async fn a_captured_answer_is_shown_as_text() {
    let output = r#"[{"role":"assistant","parts":[{"type":"text","content":"Run <script>alert(1)</script> & see"}]}]"#;
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        sampled_day(
            conn,
            NEWER,
            &[(
                1,
                answer(1, Some("<script>alert('q')</script>"), Some(output)),
            )],
        );
    });
    console.sign_in("ana", "").await;
    let page = console.get("/ui/review").await;
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    // The text part of the output messages, escaped.
    assert!(
        page.body.contains(
            "id=\"answer\">Run &#60;script&#62;alert(1)&#60;/script&#62; &#38; see</pre>"
        ),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("id=\"query\">&#60;script&#62;alert(&#39;q&#39;)&#60;/script&#62;</pre>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Output messages as captured"));
}
