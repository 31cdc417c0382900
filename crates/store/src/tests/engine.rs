//! Responses, feedback, failure records, the outbox and the session queries.

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
    TriageStatus,
};

use super::{count, span};
use crate::connection::Connection;
use crate::db::values;
use crate::records::{
    Content, FailureRow, FailureState, Feedback, FeedbackState, Response, SpanId, SpanRef, Template,
};
use crate::testing::both_engines;
use crate::Direction;

fn full_response(span: SpanRef) -> Response {
    Response {
        span: Some(span),
        start_unix_nano: 1_000_000_000,
        end_unix_nano: 1_250_000_000,
        response_id: Some("chatcmpl-1".into()),
        template: Template {
            id: Some("support".into()),
            version: Some("3".into()),
            hash: Some(format!("sha256:{}", "ab".repeat(32))),
            text: Some("You help.".into()),
        },
        chunk_ids: Some(vec!["kb-1#2".into(), String::new()]),
        model: Some("gpt-4o".into()),
        provider: Some("openai".into()),
        parameters: Some(r#"{"temperature":0.2}"#.into()),
        data_source: Some("kb".into()),
        index_version: Some("2024-06".into()),
        session_id: Some("session-1".into()),
        user_id: Some("user-1".into()),
        fingerprint: Some("fp".into()),
        semantic_fingerprint: Some(format!("sh512:all-MiniLM-L6-v2:{}", "0f".repeat(64))),
        content: Content {
            input: Some("in".into()),
            output: Some("out".into()),
            query: Some("how?".into()),
        },
    }
}

/// `response` as the store reads it back: without its template text and content, which are
/// stored apart.
fn read_back(response: &Response) -> Response {
    Response {
        template: Template {
            text: None,
            ..response.template.clone()
        },
        content: Content::default(),
        ..response.clone()
    }
}

fn feedback(id: &str, target: Option<SpanRef>, signal: FeedbackSignal) -> Feedback {
    Feedback {
        feedback_id: id.into(),
        span: None,
        target,
        response_id: None,
        signal,
        kind: FeedbackKind::Explicit,
        value: Some(0.0),
        category: Some(FailureCategory::Hallucination),
        source: FeedbackSource::User,
        comment: Some("wrong".into()),
        session_id: None,
        user_id: None,
        time_unix_nano: 7,
    }
}

/// A response reads back as written (content and template text aside, which are stored
/// apart), by its span and by its response id; indexing it again (an OTLP retry) is a no-op.
pub(crate) fn responses_round_trip(conn: &mut Connection) {
    let response = full_response(span(1));
    assert!(conn.insert_response(&response, span(1), 100, true).unwrap());
    assert!(!conn.insert_response(&response, span(1), 101, true).unwrap());
    assert_eq!(count(conn, "responses"), 1);
    assert_eq!(count(conn, "response_content"), 1);
    assert_eq!(count(conn, "templates"), 1);

    let expected = read_back(&response);
    assert_eq!(
        conn.response_by_span(span(1)).unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        conn.response_by_response_id("chatcmpl-1").unwrap(),
        Some(expected)
    );
    assert_eq!(conn.response_by_span(span(2)).unwrap(), None);
    assert_eq!(conn.response_by_response_id("chatcmpl-2").unwrap(), None);

    // The latest response with an id wins; without content, none is stored.
    let later = Response {
        chunk_ids: Some(Vec::new()),
        ..full_response(span(2))
    };
    assert!(conn.insert_response(&later, span(2), 102, false).unwrap());
    assert_eq!(count(conn, "response_content"), 1);
    let found = conn.response_by_response_id("chatcmpl-1").unwrap().unwrap();
    assert_eq!(found.span, Some(span(2)));
    assert_eq!(
        found.chunk_ids,
        Some(Vec::new()),
        "empty context is not missing context"
    );
}

/// Responses indexed together (one statement on PostgreSQL) read back as when indexed one by
/// one; a span listed twice, or indexed before, is new once.
pub(crate) fn responses_indexed_together(conn: &mut Connection) {
    assert!(conn
        .insert_response(&full_response(span(1)), span(1), 100, true)
        .unwrap());
    let second = Response {
        response_id: Some("chatcmpl-2".into()),
        content: Content::default(),
        ..full_response(span(2))
    };
    let third = Response {
        response_id: None,
        template: Template::default(),
        session_id: None,
        ..full_response(span(3))
    };
    let first_again = full_response(span(1));
    let inserted = conn
        .insert_responses(
            &[
                (&first_again, span(1), None),
                (&second, span(2), Some([9; 8])),
                (&third, span(3), None),
                (&second, span(2), None),
            ],
            101,
            true,
        )
        .unwrap();
    assert_eq!(inserted, [false, true, true, false]);
    assert_eq!(count(conn, "responses"), 3);
    // The first's content, stored when it was indexed before, and the third's: the second
    // has none, and a response indexed again adds none.
    assert_eq!(count(conn, "response_content"), 2);
    for (key, response) in [(span(2), &second), (span(3), &third)] {
        assert_eq!(
            conn.response_by_span(key).unwrap(),
            Some(read_back(response))
        );
    }
    let under = conn.response_under(SpanRef::new(span(2).trace_id, [9; 8]).unwrap());
    assert_eq!(
        under.unwrap().and_then(|r| r.span),
        Some(span(2)),
        "the parent is kept"
    );
    assert!(conn.insert_responses(&[], 102, true).unwrap().is_empty());

    // More rows than one statement carries: every row is indexed, and says so once.
    let many: Vec<Response> = (0..1_234u32)
        .map(|n| {
            let mut trace_id = [7; 16];
            trace_id[..4].copy_from_slice(&n.to_be_bytes());
            Response {
                content: Content::default(),
                ..full_response(SpanRef::new(trace_id, [7; 8]).unwrap())
            }
        })
        .collect();
    let rows: Vec<(&Response, SpanRef, Option<SpanId>)> = many
        .iter()
        .map(|response| (response, response.span.unwrap(), None))
        .collect();
    let inserted = conn.insert_responses(&rows, 103, true).unwrap();
    assert_eq!(inserted.iter().filter(|new| **new).count(), many.len());
    assert_eq!(count(conn, "responses"), 3 + many.len() as i64);
    let again = conn.insert_responses(&rows[1_000..], 104, true).unwrap();
    assert!(again.iter().all(|new| !new));
}

/// Feedback is stored once per idempotency id and judged span, waits, joins, and reads back
/// as the negatives of its record; a signal this closedloop does not know is skipped.
pub(crate) fn feedback_waits_joins_and_reads_back(conn: &mut Connection) {
    let first = feedback("fb-1", Some(span(1)), FeedbackSignal::ThumbsDown);
    let row = conn
        .insert_feedback(&first, 100, FeedbackState::Waiting)
        .unwrap()
        .unwrap();
    assert_eq!(
        conn.insert_feedback(&first, 101, FeedbackState::Waiting)
            .unwrap(),
        None,
        "a duplicate"
    );
    let other_span = feedback("fb-1", Some(span(2)), FeedbackSignal::ThumbsDown);
    let other = conn
        .insert_feedback(&other_span, 101, FeedbackState::Stored)
        .unwrap()
        .unwrap();
    assert_ne!(row, other, "the same id on another judged span is new");

    let waiting = conn.waiting_feedback().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].row, row);
    assert_eq!(waiting[0].received_s, 100);
    assert_eq!(waiting[0].link, Some(span(1)));
    assert_eq!(waiting[0].span, None);

    assert!(
        conn.negatives(span(1)).unwrap().is_empty(),
        "waiting is not joined"
    );
    conn.set_feedback_target(row, span(1), FeedbackState::Joined)
        .unwrap();
    assert!(conn.waiting_feedback().unwrap().is_empty());
    let negatives = conn.negatives(span(1)).unwrap();
    assert_eq!(negatives.len(), 1);
    assert_eq!(negatives[0].signal, FeedbackSignal::ThumbsDown);
    assert_eq!(negatives[0].kind, FeedbackKind::Explicit);
    assert_eq!(negatives[0].category, Some(FailureCategory::Hallucination));
    assert_eq!(negatives[0].time_ns, 7);

    // A row of a newer closedloop's signal, joined to the same record, is skipped.
    let newer = conn
        .insert_feedback(
            &feedback("fb-2", Some(span(1)), FeedbackSignal::ThumbsDown),
            102,
            FeedbackState::Joined,
        )
        .unwrap()
        .unwrap();
    conn.set_feedback_target(newer, span(1), FeedbackState::Joined)
        .unwrap();
    conn.db
        .execute(
            "UPDATE feedback SET signal = 'telepathy' WHERE id = ?1",
            values![newer],
        )
        .unwrap();
    assert_eq!(conn.negatives(span(1)).unwrap().len(), 1);

    conn.set_feedback_state(row, FeedbackState::Unjoined)
        .unwrap();
    assert_eq!(conn.negatives(span(1)).unwrap().len(), 1, "unjoined counts");
    conn.set_feedback_state(row, FeedbackState::Stored).unwrap();
    assert!(conn.negatives(span(1)).unwrap().is_empty());
}

fn failure(key: SpanRef, revision: i64, enriched: bool) -> FailureRow<'static> {
    FailureRow {
        key,
        now_s: 100 + revision,
        category: FailureCategory::Hallucination,
        stage: FailureStage::Generation,
        severity: FailureSeverity::Medium,
        signals: "thumbs_down",
        feedback_count: revision,
        revision,
        enriched,
        triage_status: TriageStatus::Open,
    }
}

/// A failure record's revisions update one row, which keeps its creation time.
pub(crate) fn failure_revisions_update_one_record(conn: &mut Connection) {
    assert_eq!(conn.failure_state(span(1)).unwrap(), None);
    conn.upsert_failure(&failure(span(1), 1, false)).unwrap();
    conn.upsert_failure(&failure(span(1), 2, true)).unwrap();
    assert_eq!(
        conn.failure_state(span(1)).unwrap(),
        Some(FailureState {
            revision: 2,
            enriched: true
        })
    );
    assert_eq!(count(conn, "failures"), 1);
    let times = conn
        .db
        .query_opt(
            "SELECT created_s, updated_s, category FROM failures",
            values![],
            |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<i64>(1)?,
                    row.get::<String>(2)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(times, Some((101, 102, "hallucination".to_owned())));
}

/// Outbox rows read back in order, after a given id, and are deleted once.
pub(crate) fn outbox_reads_in_order_and_deletes_once(conn: &mut Connection) {
    for n in 0..5u8 {
        conn.insert_outbox(100, &[n; 3]).unwrap();
    }
    assert_eq!(conn.outbox_len().unwrap(), 5);
    let rows = conn.read_outbox(0, 3).unwrap();
    assert_eq!(
        rows.iter().map(|row| row.span[0]).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let rest = conn.read_outbox(rows[2].id, 10).unwrap();
    assert_eq!(rest.len(), 2);
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    assert_eq!(conn.delete_outbox(&ids).unwrap(), 3);
    assert_eq!(conn.delete_outbox(&ids).unwrap(), 0);
    assert_eq!(conn.outbox_len().unwrap(), 2);
}

fn turn(n: u16, start_s: u64, query: bool) -> Response {
    Response {
        span: Some(span(n)),
        start_unix_nano: start_s * 1_000_000_000,
        end_unix_nano: start_s * 1_000_000_000 + 2_000_000,
        response_id: Some(format!("chatcmpl-{n}")),
        session_id: Some("session-1".into()),
        user_id: Some("user-1".into()),
        fingerprint: None,
        content: Content {
            query: query.then(|| format!("query {n}")),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A response's neighbours are the closest responses of its session in other traces that
/// carried a query; feedback and later responses are found.
pub(crate) fn session_neighbours_and_activity(conn: &mut Connection) {
    for (n, start_s, query) in [(1, 10, true), (2, 20, false), (3, 30, true), (4, 40, true)] {
        conn.insert_response(&turn(n, start_s, query), span(n), 100, true)
            .unwrap();
    }
    let start_ns = 30 * 1_000_000_000;
    let previous = conn
        .session_neighbour(
            "session-1",
            start_ns,
            &span(3).trace_id,
            Direction::Previous,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        previous.span,
        span(1),
        "the turn without a query is passed over"
    );
    assert_eq!(previous.query.as_deref(), Some("query 1"));
    assert_eq!(previous.end_ns, 10 * 1_000_000_000 + 2_000_000);
    assert_eq!(previous.response_id.as_deref(), Some("chatcmpl-1"));
    let next = conn
        .session_neighbour("session-1", start_ns, &span(3).trace_id, Direction::Next)
        .unwrap()
        .unwrap();
    assert_eq!(next.span, span(4));
    assert!(
        conn.session_neighbour("session-1", start_ns, &span(4).trace_id, Direction::Next)
            .unwrap()
            .is_none(),
        "a response of the turn's own trace is no neighbour"
    );
    assert!(conn
        .session_neighbour("session-2", start_ns, &span(3).trace_id, Direction::Next)
        .unwrap()
        .is_none());
    // Asked at once (one statement on PostgreSQL), each turn finds what it finds alone.
    let turns = [
        ("session-1", start_ns, span(3).trace_id),
        ("session-2", start_ns, span(3).trace_id),
        ("session-1", start_ns, span(4).trace_id),
        ("session-1", 45 * 1_000_000_000, span(9).trace_id),
    ];
    for (direction, found) in [(Direction::Previous, 3), (Direction::Next, 1)] {
        let at_once = conn.session_neighbours(&turns, direction).unwrap();
        let one_by_one: Vec<_> = turns
            .iter()
            .map(|(session, start, trace)| {
                conn.session_neighbour(session, *start, trace, direction)
                    .unwrap()
            })
            .collect();
        assert_eq!(at_once, one_by_one, "{direction:?}");
        assert_eq!(at_once.iter().flatten().count(), found, "{direction:?}");
    }

    assert!(conn.has_later_response("session-1", start_ns).unwrap());
    assert!(!conn
        .has_later_response("session-1", 40 * 1_000_000_000)
        .unwrap());

    assert!(!conn.has_feedback(span(3)).unwrap());
    conn.insert_feedback(
        &feedback("fb-1", Some(span(3)), FeedbackSignal::Regenerate),
        100,
        FeedbackState::Waiting,
    )
    .unwrap();
    assert!(
        conn.has_feedback(span(3)).unwrap(),
        "linking feedback counts"
    );
    assert!(conn
        .has_signal(span(3), FeedbackSignal::Regenerate)
        .unwrap());
    assert!(!conn.has_signal(span(3), FeedbackSignal::Rephrase).unwrap());
    let joined = conn
        .insert_feedback(
            &feedback("fb-2", None, FeedbackSignal::Rephrase),
            100,
            FeedbackState::Waiting,
        )
        .unwrap()
        .unwrap();
    assert!(!conn.has_signal(span(1), FeedbackSignal::Rephrase).unwrap());
    conn.set_feedback_target(joined, span(1), FeedbackState::Joined)
        .unwrap();
    assert!(
        conn.has_feedback(span(1)).unwrap(),
        "joined feedback counts"
    );
    assert!(conn.has_signal(span(1), FeedbackSignal::Rephrase).unwrap());
    // A semantic fingerprint alone is a query too, and comes back with the turn.
    let semantic = format!("sh512:m:{}", "a5".repeat(64));
    let only_semantic = Response {
        semantic_fingerprint: Some(semantic.clone()),
        ..turn(5, 50, false)
    };
    conn.insert_response(&only_semantic, span(5), 100, true)
        .unwrap();
    let next = conn
        .session_neighbour(
            "session-1",
            40 * 1_000_000_000,
            &span(4).trace_id,
            Direction::Next,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.span, next.semantic_fingerprint),
        (span(5), Some(semantic))
    );
}

/// A session's abandon candidate is its latest response; it comes due at its time, and is
/// dropped by session, by span, or all at once.
pub(crate) fn abandon_candidates_keep_the_latest_response(conn: &mut Connection) {
    conn.set_abandon_candidate("s-1", span(2), 20, 200).unwrap();
    conn.set_abandon_candidate("s-1", span(1), 10, 300).unwrap();
    conn.set_abandon_candidate("s-2", span(3), 30, 100).unwrap();
    assert_eq!(count(conn, "abandon_candidates"), 2);
    assert!(conn.due_abandon_candidates(99, 10).unwrap().is_empty());
    let due = conn.due_abandon_candidates(200, 10).unwrap();
    assert_eq!(
        due.iter()
            .map(|candidate| (
                candidate.session_id.as_str(),
                candidate.span,
                candidate.start_ns
            ))
            .collect::<Vec<_>>(),
        [("s-2", Some(span(3)), 30), ("s-1", Some(span(2)), 20)],
        "earliest due first; an earlier response does not replace a later one"
    );
    assert_eq!(conn.due_abandon_candidates(200, 1).unwrap().len(), 1);

    conn.drop_abandon_candidate_span(span(3)).unwrap();
    assert_eq!(count(conn, "abandon_candidates"), 1);
    conn.drop_abandon_candidate("s-1").unwrap();
    assert_eq!(count(conn, "abandon_candidates"), 0);
    conn.set_abandon_candidate("s-3", span(4), 40, 100).unwrap();
    conn.clear_abandon_candidates().unwrap();
    assert_eq!(count(conn, "abandon_candidates"), 0);
}

/// A rolled-back transaction leaves nothing, and the interner does not hand out the ids of
/// strings it rolled back.
pub(crate) fn rollback_forgets_interned_strings(conn: &mut Connection) {
    {
        let mut tx = conn.transaction().unwrap();
        tx.insert_response(&full_response(span(1)), span(1), 100, true)
            .unwrap();
    }
    assert_eq!(count(conn, "responses"), 0);
    // PostgreSQL commits new strings apart from the transaction (`postgres::Client::intern`).
    match conn.engine() {
        crate::Engine::Sqlite => assert_eq!(count(conn, "strings"), 0),
        crate::Engine::Postgres => assert!(count(conn, "strings") > 0),
    }
    let mut tx = conn.transaction().unwrap();
    tx.insert_response(&full_response(span(1)), span(1), 100, true)
        .unwrap();
    tx.commit().unwrap();
    let found = conn.response_by_span(span(1)).unwrap().unwrap();
    assert_eq!(found.model.as_deref(), Some("gpt-4o"));
    assert_eq!(found.template.id.as_deref(), Some("support"));
}

/// The shared waiting room's queries: the waiting feedback a response resolves (the feedback
/// naming any span of its trace, and the feedback that names no span but its response id),
/// those whose window has passed, and whether one is still waiting.
pub(crate) fn waiting_feedback_is_found_by_its_response(conn: &mut Connection) {
    let by_span = conn
        .insert_feedback(
            &feedback("fb-span", Some(span(1)), FeedbackSignal::ThumbsDown),
            100,
            FeedbackState::Waiting,
        )
        .unwrap()
        .unwrap();
    let mut by_id = feedback("fb-id", None, FeedbackSignal::ThumbsDown);
    by_id.response_id = Some("chatcmpl-9".into());
    let by_id = conn
        .insert_feedback(&by_id, 200, FeedbackState::Waiting)
        .unwrap()
        .unwrap();
    // Feedback that names another span, with the same response id: never this response's.
    let mut elsewhere = feedback("fb-else", Some(span(2)), FeedbackSignal::ThumbsDown);
    elsewhere.response_id = Some("chatcmpl-9".into());
    conn.insert_feedback(&elsewhere, 300, FeedbackState::Waiting)
        .unwrap()
        .unwrap();
    // Feedback naming another span of span(1)'s trace (its HTTP server span, say).
    let server = SpanRef::new(span(1).trace_id, [9; 8]).unwrap();
    let by_server = conn
        .insert_feedback(
            &feedback("fb-server", Some(server), FeedbackSignal::ThumbsDown),
            300,
            FeedbackState::Waiting,
        )
        .unwrap()
        .unwrap();
    let rows = |found: Vec<crate::records::WaitingRow>| -> Vec<i64> {
        found.iter().map(|row| row.row).collect()
    };

    assert_eq!(
        rows(conn.waiting_in_trace(&span(1).trace_id).unwrap()),
        [by_span, by_server]
    );
    let in_trace = conn.waiting_in_trace(&span(1).trace_id).unwrap();
    assert_eq!(in_trace[1].link, Some(server));
    assert_eq!(
        rows(conn.waiting_for_response_id("chatcmpl-9").unwrap()),
        [by_id]
    );
    assert!(conn.waiting_in_trace(&span(3).trace_id).unwrap().is_empty());
    assert!(conn
        .waiting_for_response_id("chatcmpl-0")
        .unwrap()
        .is_empty());

    let due: Vec<i64> = rows(conn.waiting_received_by(200, 10).unwrap());
    assert_eq!(due, [by_span, by_id], "received by 200, oldest first");
    assert_eq!(
        conn.waiting_received_by(300, 1).unwrap().len(),
        1,
        "the limit"
    );

    assert!(conn.is_waiting(by_span).unwrap());
    conn.set_feedback_target(by_span, span(1), FeedbackState::Joined)
        .unwrap();
    assert!(!conn.is_waiting(by_span).unwrap());
    assert_eq!(
        rows(conn.waiting_in_trace(&span(1).trace_id).unwrap()),
        [by_server]
    );
}

/// A span of `span(trace)`'s trace with span id `n`.
fn in_trace(trace: u16, n: u8) -> SpanRef {
    SpanRef::new(span(trace).trace_id, [n; 8]).unwrap()
}

/// The lookups of feedback naming a span that is not a response: aliases (first one kept),
/// the trace's last-ending response, the response beneath a span (by parent), and a
/// response's details rewritten (nested LLM spans folded into one).
pub(crate) fn aliases_and_trace_lookups(conn: &mut Connection) {
    let early = Response {
        span: Some(in_trace(1, 1)),
        start_unix_nano: 1_000_000_000,
        end_unix_nano: 2_000_000_000,
        ..Default::default()
    };
    let late = Response {
        span: Some(in_trace(1, 2)),
        start_unix_nano: 1_500_000_000,
        end_unix_nano: 3_000_000_000,
        ..Default::default()
    };
    assert!(conn
        .insert_response_under(&late, in_trace(1, 2), Some([7; 8]), 100, true)
        .unwrap());
    assert!(conn
        .insert_response_under(&early, in_trace(1, 1), Some([7; 8]), 100, true)
        .unwrap());
    assert!(conn
        .insert_response(&full_response(span(2)), span(2), 100, true)
        .unwrap());

    let last = conn.last_response_of_trace(&span(1).trace_id).unwrap();
    assert_eq!(last.and_then(|r| r.span), Some(in_trace(1, 2)), "ends last");
    assert!(conn
        .last_response_of_trace(&span(3).trace_id)
        .unwrap()
        .is_none());
    let under = conn.response_under(in_trace(1, 7)).unwrap();
    assert_eq!(under.and_then(|r| r.span), Some(in_trace(1, 2)));
    // Span times come from clients: the latest representable end must not overflow the
    // ordering (PostgreSQL refuses an out-of-range bigint, which would fail the whole batch).
    let extreme = Response {
        span: Some(in_trace(4, 1)),
        start_unix_nano: 1_700_000_000_000_000_000,
        end_unix_nano: u64::MAX,
        ..Default::default()
    };
    assert!(conn
        .insert_response_under(&extreme, in_trace(4, 1), Some([7; 8]), 100, true)
        .unwrap());
    let last = conn.last_response_of_trace(&span(4).trace_id).unwrap();
    assert_eq!(last.and_then(|r| r.span), Some(in_trace(4, 1)));
    let under = conn.response_under(in_trace(4, 7)).unwrap();
    assert_eq!(under.and_then(|r| r.span), Some(in_trace(4, 1)));
    assert!(conn.response_under(in_trace(1, 2)).unwrap().is_none());
    assert!(
        conn.response_under(SpanRef::new(span(2).trace_id, [7; 8]).unwrap())
            .unwrap()
            .is_none(),
        "the parent is looked up in the response's own trace"
    );
    // The same lookups at once (one statement on PostgreSQL) choose the same rows.
    let asked = [
        in_trace(1, 7),
        in_trace(4, 7),
        in_trace(1, 2),
        SpanRef::new(span(2).trace_id, [7; 8]).unwrap(),
    ];
    let at_once = conn.responses_under(&asked).unwrap();
    assert_eq!(at_once.len(), 2);
    for span in asked {
        let one = conn.response_under(span).unwrap().and_then(|r| r.span);
        let row = at_once.get(&span).copied();
        let batched = row.and_then(|row| conn.response_by_row(row).unwrap()?.span);
        assert_eq!(batched, one, "{span:?}");
    }

    conn.insert_alias(in_trace(1, 7), [2; 8], 100).unwrap();
    conn.insert_alias(in_trace(1, 7), [1; 8], 101).unwrap();
    assert_eq!(
        conn.alias_target(in_trace(1, 7)).unwrap(),
        Some(in_trace(1, 2)),
        "the first alias stays"
    );
    assert!(conn.alias_target(in_trace(1, 8)).unwrap().is_none());
    assert_eq!(count(conn, "span_aliases"), 1);

    let details = Response {
        content: Content {
            output: Some("answer".into()),
            ..Default::default()
        },
        ..full_response(in_trace(1, 2))
    };
    conn.update_response_details(in_trace(1, 2), &details, true)
        .unwrap();
    let found = conn.response_by_span(in_trace(1, 2)).unwrap().unwrap();
    assert_eq!(found.model.as_deref(), Some("gpt-4o"));
    assert_eq!(found.template.id.as_deref(), Some("support"));
    assert_eq!(found.chunk_ids, details.chunk_ids);
    assert_eq!(found.session_id.as_deref(), Some("session-1"));
    assert_eq!(found.start_unix_nano, 1_500_000_000, "times stay");
    assert_eq!(
        conn.response_by_response_id("chatcmpl-1")
            .unwrap()
            .and_then(|r| r.span),
        Some(span(2)),
        "the latest response with the id"
    );
    assert_eq!(count(conn, "response_content"), 2);
    conn.update_response_details(in_trace(1, 2), &details, true)
        .unwrap();
    assert_eq!(count(conn, "response_content"), 2, "content is kept once");
}

/// Claiming outbox rows: the oldest first, at most the limit; on PostgreSQL leased until the
/// lease ends (and released at once on request), on SQLite read as they are.
pub(crate) fn outbox_claims_lease_rows(conn: &mut Connection) {
    for n in 0..3u8 {
        conn.insert_outbox(10, &[n]).unwrap();
    }
    let first = conn.claim_outbox("otlp", 100, 160, 2).unwrap();
    assert_eq!(
        first.iter().map(|row| row.span.clone()).collect::<Vec<_>>(),
        [vec![0], vec![1]]
    );
    let again = conn.claim_outbox("otlp", 100, 160, 10).unwrap();
    match conn.engine() {
        crate::Engine::Postgres => {
            assert_eq!(again.len(), 1, "leased rows are skipped: {again:?}");
            assert_eq!(again[0].span, [2]);
            assert_eq!(
                conn.claim_outbox("otlp", 161, 200, 10).unwrap().len(),
                3,
                "leases expire"
            );
            conn.release_outbox(&[first[0].id]).unwrap();
            let released = conn.claim_outbox("otlp", 170, 230, 10).unwrap();
            assert_eq!(released.len(), 1);
            assert_eq!(released[0].id, first[0].id);
        }
        crate::Engine::Sqlite => assert_eq!(again.len(), 3, "one receiver: no lease"),
    }
}

/// A revision is queued once per sink; each sink claims its own rows; a sink taken out of the
/// set is no longer queued for but keeps its waiting rows, and a store whose sinks were never
/// set queues for `otlp`.
pub(crate) fn outbox_rows_per_sink(conn: &mut Connection) {
    assert_eq!(conn.outbox_sinks().unwrap(), ["otlp"]);
    assert_eq!(conn.insert_outbox(10, &[0]).unwrap(), 1);
    assert!(conn
        .set_outbox_sinks(&["otlp", "phoenix", "langfuse"])
        .unwrap()
        .is_empty());
    // Setting the same set again (another receiver starting) changes nothing.
    assert!(conn
        .set_outbox_sinks(&["otlp", "phoenix", "langfuse"])
        .unwrap()
        .is_empty());
    assert_eq!(
        conn.outbox_sinks().unwrap(),
        ["langfuse", "otlp", "phoenix"]
    );
    assert_eq!(conn.insert_outbox(11, &[1]).unwrap(), 3, "one row per sink");
    assert_eq!(conn.outbox_len().unwrap(), 4);
    let spans = |rows: Vec<crate::records::OutboxRow>| {
        rows.into_iter().map(|row| row.span).collect::<Vec<_>>()
    };
    assert_eq!(
        spans(conn.claim_outbox("otlp", 100, 160, 10).unwrap()),
        [vec![0], vec![1]]
    );
    let phoenix = conn.claim_outbox("phoenix", 100, 160, 10).unwrap();
    assert_eq!(spans(phoenix.clone()), [vec![1]]);
    assert_eq!(conn.delete_outbox(&[phoenix[0].id]).unwrap(), 1);
    assert!(conn
        .claim_outbox("phoenix", 200, 260, 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        spans(conn.claim_outbox("langfuse", 100, 160, 10).unwrap()),
        [vec![1]],
        "delivered to one sink, still waiting for the other"
    );
    assert_eq!(
        conn.set_outbox_sinks(&["phoenix"]).unwrap(),
        ["langfuse", "otlp"]
    );
    assert_eq!(conn.outbox_sinks().unwrap(), ["phoenix"]);
    assert_eq!(
        conn.outbox_len().unwrap(),
        3,
        "rows already waiting for a sink taken out stay for its exporter or pruning"
    );
    assert_eq!(conn.insert_outbox(12, &[2]).unwrap(), 1);
}

/// Two receivers claiming at once on PostgreSQL: rows another receiver is claiming are
/// skipped, so each row goes to one of them.
pub(crate) fn receivers_claim_distinct_outbox_rows(
    first: &mut Connection,
    second: &mut Connection,
) {
    for n in 0..4u8 {
        first.insert_outbox(10, &[n]).unwrap();
    }
    let mut tx = first.transaction().unwrap();
    let mine = tx.claim_outbox("otlp", 100, 200, 2).unwrap();
    // The first claim's transaction is open: its rows are locked, and skipped.
    let theirs = second.claim_outbox("otlp", 100, 200, 10).unwrap();
    tx.commit().unwrap();
    let mine: Vec<i64> = mine.iter().map(|row| row.id).collect();
    let theirs: Vec<i64> = theirs.iter().map(|row| row.id).collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(theirs.len(), 2);
    assert!(
        mine.iter().all(|id| !theirs.contains(id)),
        "{mine:?} {theirs:?}"
    );
}

/// Two receivers pruning at once on PostgreSQL: while one prunes, the other skips its turn.
pub(crate) fn one_receiver_prunes_at_a_time(first: &mut Connection, second: &mut Connection) {
    let settings = crate::records::PruneSettings {
        cutoff_s: 1_000,
        max_bytes: u64::MAX,
    };
    first.insert_outbox(10, &[1]).unwrap();
    let mut tx = first.transaction().unwrap();
    assert_eq!(tx.prune(&settings).unwrap().outbox, 1);
    second.insert_outbox(10, &[2]).unwrap();
    let mut other = second.transaction().unwrap();
    assert_eq!(
        other.prune(&settings).unwrap().outbox,
        0,
        "the other receiver prunes"
    );
    other.commit().unwrap();
    tx.commit().unwrap();
    assert_eq!(
        second.prune(&settings).unwrap().outbox,
        1,
        "its turn, once the first is done"
    );
}

#[test]
fn receivers_claim_distinct_outbox_rows_on_postgres() {
    crate::testing::on_postgres_pair(
        concat!(
            module_path!(),
            "::receivers_claim_distinct_outbox_rows_on_postgres"
        ),
        receivers_claim_distinct_outbox_rows,
    );
}

#[test]
fn one_receiver_prunes_at_a_time_on_postgres() {
    crate::testing::on_postgres_pair(
        concat!(
            module_path!(),
            "::one_receiver_prunes_at_a_time_on_postgres"
        ),
        one_receiver_prunes_at_a_time,
    );
}

both_engines!(
    responses_round_trip,
    responses_indexed_together,
    waiting_feedback_is_found_by_its_response,
    aliases_and_trace_lookups,
    outbox_claims_lease_rows,
    outbox_rows_per_sink,
    feedback_waits_joins_and_reads_back,
    failure_revisions_update_one_record,
    outbox_reads_in_order_and_deletes_once,
    session_neighbours_and_activity,
    abandon_candidates_keep_the_latest_response,
    rollback_forgets_interned_strings,
);
