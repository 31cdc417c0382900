//! The failure records: the list's filters, trace-id search and pages, a record's page, and
//! the triage actions taken from it.

mod support;

use axum::http::StatusCode;
use closedloop_console::UiConfig;
use closedloop_engine::direct::{self, DirectSettings};
use closedloop_engine::vocab::{
    FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource, TriageStatus,
};
use closedloop_store::records::{
    Content, FailureFilter, FailureListRow, Feedback, Response, SpanRef, Template,
};
use closedloop_store::{Access, Connection};
use support::{Page, TestConsole};

/// One judged answer of the fixture.
struct Answer {
    n: u16,
    template: &'static str,
    version: &'static str,
    model: &'static str,
    source: &'static str,
    signal: FeedbackSignal,
    category: Option<FailureCategory>,
    query: Option<&'static str>,
}

fn span(n: u16) -> SpanRef {
    let [high, low] = n.to_be_bytes();
    let mut trace_id = [0x4b; 16];
    trace_id[0] = high;
    trace_id[1] = low;
    SpanRef::new(trace_id, [0x5c, 0, 0, 0, 0, 0, high, low]).unwrap()
}

fn id(n: u16) -> String {
    let key = span(n);
    format!(
        "fr_{}_{}",
        hex::encode(key.trace_id),
        hex::encode(key.span_id)
    )
}

/// Indexes the answer's response and judges its negative feedback through the engine's join,
/// as `closedloop review label` would: a failure record with its first revision.
fn judge(conn: &mut Connection, answer: &Answer) {
    let key = span(answer.n);
    let response = Response {
        span: Some(key),
        start_unix_nano: 1_764_640_000_000_000_000,
        end_unix_nano: 1_764_640_001_200_000_000,
        response_id: Some(format!("chatcmpl-{}", answer.n)),
        template: Template {
            id: Some(answer.template.into()),
            version: Some(answer.version.into()),
            hash: Some(format!("sha256:{}", "3f".repeat(32))),
            text: None,
        },
        chunk_ids: Some(vec![
            "kb/billing/refunds#2".into(),
            "kb/billing/plans#7".into(),
        ]),
        model: Some(answer.model.into()),
        provider: Some("openai".into()),
        parameters: Some(r#"{"gen_ai.request.temperature":0.2}"#.into()),
        data_source: Some(answer.source.into()),
        index_version: Some("2026-11-28".into()),
        session_id: Some(format!("sess-{}", answer.n)),
        user_id: Some("user-8812".into()),
        fingerprint: None,
        semantic_fingerprint: None,
        content: Content {
            input: None,
            output: answer
                .query
                .map(|_| "Refunds are issued within 5 business days.".into()),
            query: answer.query.map(str::to_owned),
        },
    };
    conn.insert_response(&response, key, 1_764_640_000, true)
        .unwrap();
    let settings = DirectSettings::default();
    direct::write(conn, &settings, |w| {
        direct::judge(
            w,
            &settings,
            Feedback {
                feedback_id: format!("fb-{}", answer.n),
                span: None,
                target: Some(key),
                response_id: None,
                signal: answer.signal,
                kind: FeedbackKind::Explicit,
                value: None,
                category: answer.category,
                source: FeedbackSource::User,
                comment: Some("The answer quotes last year's refund policy.".into()),
                session_id: None,
                user_id: Some("user-8812".into()),
                time_unix_nano: 1_764_640_005_000_000_000,
            },
        )
    })
    .unwrap();
}

fn answer(n: u16) -> Answer {
    Answer {
        n,
        template: "support-answer",
        version: "v3",
        model: "gpt-4o-mini",
        source: "help-center",
        signal: FeedbackSignal::ThumbsDown,
        category: None,
        query: None,
    }
}

/// Six records that differ in every filtered field, one of them reassigned and one
/// acknowledged.
fn six_records(conn: &mut Connection) {
    let answers = [
        answer(1),
        Answer {
            category: Some(FailureCategory::MissingContext),
            ..answer(2)
        },
        Answer {
            model: "gpt-4o",
            signal: FeedbackSignal::Report,
            ..answer(3)
        },
        Answer {
            template: "refund-policy",
            ..answer(4)
        },
        Answer {
            version: "v4",
            source: "billing-docs",
            query: Some("<script>alert(1)</script> Can I get a refund after 30 days?"),
            ..answer(5)
        },
        Answer {
            category: Some(FailureCategory::Hallucination),
            ..answer(6)
        },
    ];
    for answer in &answers {
        judge(conn, answer);
    }
    let settings = DirectSettings::default();
    closedloop_commands::triage::reassign(
        conn,
        &settings,
        &id(4),
        "billing-team",
        Some("refund policy questions are ours"),
        Some("lead"),
    )
    .unwrap();
    closedloop_commands::triage::set_status(
        conn,
        &settings,
        &id(6),
        TriageStatus::Acknowledged,
        None,
        Some("lead"),
    )
    .unwrap();
}

/// The record ids a list page links to, in order.
fn listed(page: &Page) -> Vec<String> {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
        .match_indices("href=\"/ui/records/fr_")
        .map(|(at, _)| {
            let rest = &page.body[at + "href=\"/ui/records/".len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn all_records(console: &TestConsole) -> Vec<FailureListRow> {
    let mut conn = Connection::open(&console.store, Access::Reader).unwrap();
    conn.failure_list(&FailureFilter::default(), 1_000).unwrap()
}

fn ids_where(records: &[FailureListRow], keep: impl Fn(&FailureListRow) -> bool) -> Vec<String> {
    records
        .iter()
        .filter(|record| keep(record))
        .map(|record| {
            format!(
                "fr_{}_{}",
                hex::encode(record.key.trace_id),
                hex::encode(record.key.span_id)
            )
        })
        .collect()
}

/// Whether the form's field `name` holds `value`: the chosen option of a select, or the
/// value of an input.
fn kept(body: &str, name: &str, value: &str) -> bool {
    let Some(at) = body.find(&format!("name=\"{name}\"")) else {
        return false;
    };
    let tag_start = body[..at].rfind('<').unwrap();
    if body[tag_start..].starts_with("<select") {
        let end = body[at..].find("</select>").unwrap() + at;
        body[at..end].contains(&format!("value=\"{value}\" selected"))
    } else {
        let end = body[at..].find('>').unwrap() + at;
        body[at..end].contains(&format!("value=\"{value}\""))
    }
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_stays_filled_in() {
    let mut console = TestConsole::new(UiConfig::default(), six_records);
    console.sign_in("ana", "").await;
    let records = all_records(&console);
    assert_eq!(records.len(), 6);
    assert_eq!(listed(&console.get("/ui/records").await).len(), 6);
    let category = records[0].category;
    let stage = records[0].stage;
    let severity = records
        .iter()
        .find(|record| record.key == span(3))
        .unwrap()
        .severity;
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("category={category}"),
            ids_where(&records, |record| record.category == category),
        ),
        (
            format!("stage={stage}"),
            ids_where(&records, |record| record.stage == stage),
        ),
        (
            format!("severity={severity}"),
            ids_where(&records, |record| record.severity == severity),
        ),
        ("status=acknowledged".into(), vec![id(6)]),
        ("owner=billing-team".into(), vec![id(4)]),
        ("template=refund-policy".into(), vec![id(4)]),
        ("template=support-answer&version=v4".into(), vec![id(5)]),
        ("model=gpt-4o".into(), vec![id(3)]),
        ("source=billing-docs".into(), vec![id(5)]),
        ("since=2000-01-01&until=2000-01-02".into(), vec![]),
        (
            "since=2000-01-01T00:00".into(),
            ids_where(&records, |_| true),
        ),
    ];
    for (query, expected) in cases {
        let page = console.get(&format!("/ui/records?{query}")).await;
        let found = listed(&page);
        assert_eq!(found, expected, "{query}");
        assert!(
            found.len() < 6 || query.starts_with("since=2000-01-01T"),
            "{query} narrows the list"
        );
        // The chosen values stay in the form.
        for pair in query.split('&') {
            let (field, value) = pair.split_once('=').unwrap();
            assert!(
                kept(&page.body, field, value),
                "{query}: {field} stays filled in"
            );
        }
    }
    let unknown = console.get("/ui/records?category=bogus").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    // The suggested values come from the records.
    let page = console.get("/ui/records").await;
    assert!(page.body.contains("<option value=\"billing-team\">"));
    assert!(page.body.contains("<option value=\"refund-policy\">"));
    assert!(page.body.contains("<option value=\"gpt-4o\">"));
}

#[tokio::test]
async fn records_are_found_by_trace_id_or_its_first_eight_digits() {
    let mut console = TestConsole::new(UiConfig::default(), six_records);
    console.sign_in("ana", "").await;
    let trace = hex::encode(span(3).trace_id);
    assert_eq!(
        listed(&console.get(&format!("/ui/records?trace={trace}")).await),
        [id(3)]
    );
    assert_eq!(
        listed(
            &console
                .get(&format!("/ui/records?trace={}", &trace[..8].to_uppercase()))
                .await
        ),
        [id(3)]
    );
    // All six share their trace ids' last 14 bytes, not their first 2.
    assert_eq!(
        listed(&console.get("/ui/records?trace=00074b4b").await),
        Vec::<String>::new()
    );
    let short = console.get("/ui/records?trace=0003").await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body.contains("at least the first 8"),
        "{}",
        short.body
    );
}

#[tokio::test]
async fn pages_of_fifty_follow_each_other_with_the_filters() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        for n in 1..=120 {
            judge(
                conn,
                &Answer {
                    model: if n % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" },
                    ..answer(n)
                },
            );
        }
    });
    console.sign_in("ana", "").await;
    let mut seen = Vec::new();
    let mut path = "/ui/records?model=gpt-4o".to_owned();
    let mut pages = 0;
    loop {
        let page = console.get(&path).await;
        let ids = listed(&page);
        assert!(ids.len() <= 50);
        seen.extend(ids);
        pages += 1;
        assert!(pages <= 3, "the pages do not end: {path}");
        let Some(at) = page.body.find("rel=\"next\"") else {
            break;
        };
        let before = &page.body[..at];
        let start = before.rfind("href=\"").unwrap() + "href=\"".len();
        path = before[start..before[start..].find('"').unwrap() + start]
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        assert!(path.contains("model=gpt-4o"), "{path}");
    }
    assert_eq!(pages, 2);
    let expected: Vec<String> = ids_where(&all_records(&console), |record| {
        record.model.as_deref() == Some("gpt-4o")
    });
    assert_eq!(expected.len(), 60);
    assert_eq!(seen, expected, "every record once, newest first");
}

#[tokio::test]
async fn a_record_page_shows_its_state_revisions_signals_and_enrichment() {
    let ui = UiConfig {
        trace_url: Some("http://jaeger:16686/trace/{trace_id}?uiFind={span_id}".into()),
        ..UiConfig::default()
    };
    let mut console = TestConsole::new(ui, six_records);
    console.sign_in("ana", "").await;
    let page = console.get(&format!("/ui/records/{}", id(4))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for text in [
        "billing-team",
        // Two revisions: the feedback's, and the reassignment's with its author and note.
        "data-revision=\"1\"",
        "data-revision=\"2\"",
        "feedback <span class=\"mono\">fb-4</span>",
        "triage by <strong>lead</strong>: <span class=\"note\">refund policy questions are ours</span>",
        // The signal, in full.
        "thumbs_down",
        "The answer quotes last year&#39;s refund policy.",
        // The enrichment.
        "refund-policy",
        "v3",
        &format!("sha256:{}", "3f".repeat(32)),
        "<li class=\"mono\">kb/billing/refunds#2</li><li class=\"mono\">kb/billing/plans#7</li>",
        "gpt-4o-mini",
        "openai",
        "2026-11-28",
        "help-center",
        "sess-4",
        "user-8812",
        "Content not captured",
    ] {
        assert!(body.contains(text), "{text} missing from {body}");
    }
    let trace = hex::encode(span(4).trace_id);
    let link = format!(
        "href=\"http://jaeger:16686/trace/{trace}?uiFind={}\"",
        hex::encode(span(4).span_id)
    );
    assert!(body.contains(&link), "{body}");
    // Without ui.trace_url, no link.
    let mut plain = TestConsole::new(UiConfig::default(), six_records);
    plain.sign_in("ana", "").await;
    let page = plain.get(&format!("/ui/records/{}", id(4))).await;
    assert!(!page.body.contains("Open the trace"));
    assert_eq!(
        plain.get("/ui/records/fr_nope").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        plain
            .get(&format!(
                "/ui/records/fr_{}_{}",
                "ab".repeat(16),
                "cd".repeat(8)
            ))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn actions_change_the_status_as_the_signed_in_user_with_a_new_revision() {
    let mut console = TestConsole::new(UiConfig::default(), six_records);
    let csrf = console.sign_in("ana", "").await;
    let path = format!("/ui/records/{}", id(1));
    let page = console.get(&path).await;
    assert!(page.body.contains("data-key=\"a\""));
    assert!(page.body.contains("data-key=\"r\""));
    assert!(page.body.contains("data-key=\"w\""));
    assert!(page.body.contains("data-key=\"o\""));
    // Without the token: refused, nothing changed.
    let refused = console
        .post(
            &format!("{path}/status"),
            &[("status", "resolved"), ("note", "")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    for (status, note) in [
        ("acknowledged", "Reproduced with the March policy page."),
        ("resolved", "Re-indexed the billing docs."),
        ("wont_fix", ""),
    ] {
        let done = console
            .post(
                &format!("{path}/status"),
                &[("csrf", &csrf), ("status", status), ("note", note)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), path);
    }
    let done = console
        .post(
            &format!("{path}/owner"),
            &[
                ("csrf", &csrf),
                ("owner", "search-team"),
                ("note", "retrieval"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let mut conn = Connection::open(&console.store, Access::Reader).unwrap();
    let revisions = conn.failure_revisions(span(1)).unwrap();
    let statuses: Vec<TriageStatus> = revisions.iter().map(|revision| revision.status).collect();
    assert_eq!(
        statuses,
        [
            TriageStatus::Open,
            TriageStatus::Acknowledged,
            TriageStatus::Resolved,
            TriageStatus::WontFix,
            TriageStatus::WontFix,
        ]
    );
    for revision in &revisions[1..] {
        assert_eq!(revision.actor.as_deref(), Some("ana"), "{revision:?}");
    }
    assert_eq!(
        revisions[1].note.as_deref(),
        Some("Reproduced with the March policy page.")
    );
    assert_eq!(revisions[4].owner.as_deref(), Some("search-team"));
    let page = console.get(&path).await;
    assert!(page.body.contains("data-revision=\"5\""), "{}", page.body);
    assert!(page.body.contains("triage by <strong>ana</strong>"));
    assert!(page.body.contains("Re-indexed the billing docs."));
    // A status the registry does not know: refused.
    let bad = console
        .post(
            &format!("{path}/status"),
            &[("csrf", &csrf), ("status", "deleted")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn captured_content_is_shown_as_text() {
    let mut console = TestConsole::new(UiConfig::default(), six_records);
    console.sign_in("ana", "").await;
    let page = console.get(&format!("/ui/records/{}", id(5))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(
        page.body.contains(
            "&#60;script&#62;alert(1)&#60;/script&#62; Can I get a refund after 30 days?"
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("Refunds are issued within 5 business days."));
}

#[tokio::test]
async fn the_triage_board_shows_open_and_acknowledged_records_by_owner() {
    let mut console = TestConsole::new(UiConfig::default(), |conn| {
        six_records(conn);
        closedloop_commands::triage::set_status(
            conn,
            &DirectSettings::default(),
            &id(2),
            TriageStatus::Resolved,
            None,
            Some("lead"),
        )
        .unwrap();
    });
    console.sign_in("ana", "").await;
    let page = console.get("/ui/triage").await;
    assert_eq!(page.status, StatusCode::OK);
    let ids = listed(&page);
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(
        !ids.contains(&id(2)),
        "resolved records are not on the board"
    );
    assert!(page.body.contains("billing-team"));
    assert!(page.body.contains("5 open or acknowledged records"));
}

/// A browser asks for `/favicon.ico` outside the cookie's path, so without the session
/// cookie; the console (the receiver's fallback) must not answer it with a new session that
/// replaces the one of the pages under /ui.
#[tokio::test]
async fn a_request_outside_the_console_does_not_replace_the_session() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    console.sign_in("ana", "").await;
    let signed_in = console.cookie.clone();
    console.cookie = None;
    let favicon = console.get("/favicon.ico").await;
    assert_eq!(favicon.status, StatusCode::NOT_FOUND);
    assert!(
        !favicon.headers.contains_key(axum::http::header::SET_COOKIE),
        "{:?}",
        favicon.headers
    );
    console.cookie = signed_in;
    assert_eq!(console.get("/ui/records").await.status, StatusCode::OK);
}
