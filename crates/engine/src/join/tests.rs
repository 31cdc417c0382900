//! The join on a store two receivers share (PostgreSQL): feedback naming a span that is not
//! a response, stored by one receiver, is joined by the other's response; nested LLM spans
//! indexed by different receivers are one response. (The receiver's tests cover SQLite.)
//! And, on both engines, how the detectors pair the turns of one request.

use closedloop_store::testing::TestStore;
use closedloop_store::{Access, Connection};

use super::{JoinConfig, Joiner};
use crate::detectors::DetectorsConfig;
use crate::direct::{write, DirectSettings};
use crate::lineage::Lineage;
use crate::records::{Feedback, Response, SpanRef, Template};
use crate::store::IngestBatch;
use crate::vocab::{FeedbackKind, FeedbackSignal, FeedbackSource};

const TRACE: [u8; 16] = [5; 16];

fn span(n: u8) -> SpanRef {
    SpanRef::new(TRACE, [n; 8]).unwrap()
}

fn thumbs_down(id: &str, target: SpanRef) -> Feedback {
    Feedback {
        feedback_id: id.into(),
        span: None,
        target: Some(target),
        response_id: None,
        signal: FeedbackSignal::ThumbsDown,
        kind: FeedbackKind::Explicit,
        value: None,
        category: None,
        source: FeedbackSource::User,
        comment: None,
        session_id: None,
        user_id: None,
        time_unix_nano: 1,
    }
}

/// One receiver: its own connection and joiner on the shared store.
struct Receiver {
    conn: Connection,
    joiner: Joiner,
}

impl Receiver {
    fn open(store: &TestStore) -> Self {
        Self {
            conn: store.open(Access::Writer),
            joiner: Joiner::new(&JoinConfig::default(), &DetectorsConfig::default()),
        }
    }

    fn feedback(&mut self, feedback: Feedback) {
        let joiner = &mut self.joiner;
        write(&mut self.conn, &DirectSettings::default(), |w| {
            joiner.feedback(w, feedback).map(|_| ())
        })
        .unwrap();
    }

    fn ingest(&mut self, batch: IngestBatch) {
        let joiner = &mut self.joiner;
        write(&mut self.conn, &DirectSettings::default(), |w| {
            joiner.ingest(w, batch)
        })
        .unwrap();
    }
}

/// A response of span `n` under `parent`, with the ancestors `above` in its request.
fn batch_of(responses: Vec<(Response, Option<u8>, Vec<u8>)>) -> IngestBatch {
    let mut batch = IngestBatch::default();
    for (response, parent, above) in responses {
        batch.lineage.push(Lineage {
            span: response.span.unwrap(),
            parent: parent.map(|p| [p; 8]),
            ancestors: above.into_iter().map(|a| [a; 8]).collect(),
        });
        batch.responses.push(response);
    }
    batch
}

fn llm(n: u8, end_s: u64) -> Response {
    Response {
        span: Some(span(n)),
        start_unix_nano: 1,
        end_unix_nano: end_s * 1_000_000_000,
        ..Default::default()
    }
}

#[test]
fn receivers_sharing_a_store_resolve_request_spans_and_fold_nested_llm_spans() {
    let Some(store) = TestStore::postgres("join::tests::receivers_sharing_a_store") else {
        return;
    };
    let (mut a, mut b) = (Receiver::open(&store), Receiver::open(&store));

    // Feedback naming the server span (1) reaches A before any span of its trace: it waits,
    // in the store.
    a.feedback(thumbs_down("fb-server", span(1)));
    assert_eq!(a.conn.waiting_in_trace(&TRACE).unwrap().len(), 1);
    // B gets the request: the server span over an LLM span (2).
    let answer = Response {
        model: Some("gpt-4o".into()),
        ..llm(2, 10)
    };
    b.ingest(batch_of(vec![(answer, Some(1), vec![1])]));
    assert!(b.conn.waiting_in_trace(&TRACE).unwrap().is_empty());
    let state = b.conn.failure_state(span(2)).unwrap().expect("a record");
    assert!(state.enriched);
    assert!(b.conn.failure_state(span(1)).unwrap().is_none());
    assert_eq!(b.conn.alias_target(span(1)).unwrap(), Some(span(2)));

    // A chat span (4) beneath a predict span (3) reaches A, then predict reaches B: one
    // response, the chat span, with predict's template.
    a.ingest(batch_of(vec![(llm(4, 20), Some(3), vec![])]));
    let predict = Response {
        template: Template {
            id: Some("qa".into()),
            version: Some("1".into()),
            ..Default::default()
        },
        ..llm(3, 21)
    };
    b.ingest(batch_of(vec![(predict, Some(1), vec![])]));
    assert!(b.conn.response_by_span(span(3)).unwrap().is_none());
    let chat = b.conn.response_by_span(span(4)).unwrap().expect("chat");
    assert_eq!(chat.template.id.as_deref(), Some("qa"));
    assert_eq!(b.conn.alias_target(span(3)).unwrap(), Some(span(4)));
    // Feedback naming predict, at A: chat's record.
    a.feedback(thumbs_down("fb-predict", span(3)));
    assert!(a.conn.failure_state(span(4)).unwrap().is_some());
    assert!(a.conn.failure_state(span(3)).unwrap().is_none());
}

/// Turn `n` of `session`, in its own trace, asking `query` at minute `n`.
fn session_turn(session: &str, n: u8, query: &str) -> Response {
    let start_ns = u64::from(n) * 60_000_000_000;
    Response {
        span: Some(SpanRef::new([n; 16], [n; 8]).unwrap()),
        start_unix_nano: start_ns,
        end_unix_nano: start_ns + 2_000_000_000,
        session_id: Some(session.into()),
        fingerprint: Some(closedloop_tracing::fingerprint(query).to_string()),
        ..Default::default()
    }
}

/// The detectors judge a request's turns once all of them are indexed: two turns of one
/// session in one request give one rephrase, on the first, whichever order the request
/// lists them in (the first request lists the later turn first, the second the earlier).
fn turns_of_one_request_pair_in_either_order(store: &TestStore) {
    let first = session_turn("s-1", 1, "How do I cancel my subscription?");
    let second = session_turn("s-1", 2, "cancel my subscription how");
    let mut receiver = Receiver::open(store);
    receiver.ingest(batch_of(vec![
        (second.clone(), None, vec![]),
        (first.clone(), None, vec![]),
    ]));
    let later = session_turn("s-2", 4, "How do I cancel my subscription?");
    let again = session_turn("s-2", 5, "cancel my subscription how");
    receiver.ingest(batch_of(vec![
        (later.clone(), None, vec![]),
        (again.clone(), None, vec![]),
    ]));
    for (judged, quiet) in [(&first, &second), (&later, &again)] {
        let negatives = receiver.conn.negatives(judged.span.unwrap()).unwrap();
        assert_eq!(negatives.len(), 1, "{negatives:?}");
        assert!(matches!(
            negatives[0].signal,
            FeedbackSignal::Rephrase | FeedbackSignal::Regenerate
        ));
        assert!(receiver
            .conn
            .negatives(quiet.span.unwrap())
            .unwrap()
            .is_empty());
    }
}

#[test]
fn turns_of_one_request_pair_in_either_order_on_sqlite() {
    turns_of_one_request_pair_in_either_order(&TestStore::sqlite());
}

#[test]
fn turns_of_one_request_pair_in_either_order_on_postgres() {
    if let Some(store) =
        TestStore::postgres("join::tests::turns_of_one_request_pair_in_either_order_on_postgres")
    {
        turns_of_one_request_pair_in_either_order(&store);
    }
}
