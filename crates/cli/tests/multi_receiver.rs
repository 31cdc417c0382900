//! Several receivers on one PostgreSQL store: three real `closedloop serve` processes share a
//! fresh database and export failure records to one OTLP sink, while clients send each turn
//! of a session and each piece of feedback to a receiver picked at random.
//!
//! What must hold (docs/scaling.md):
//! - every negative feedback yields exactly one failure record per judged response, enriched
//!   from the response span whichever receiver indexed it, also when the feedback arrived
//!   first and on another receiver;
//! - the rephrase detector compares the turns of a session that different receivers got;
//! - every revision of every record reaches the sink, duplicates within the documented bound
//!   (none without a failure, at most one export batch per receiver killed);
//! - after SIGKILL of one receiver in the middle of a stream, everything it acknowledged is
//!   in the store and exported by the others, and nothing it was writing is half-written.
//!
//! The database is created from `CLOSEDLOOP_TEST_POSTGRES_URL` (`scripts/postgres.sh start`
//! prints it) and dropped afterwards. Without that variable the test is skipped with a line
//! on stderr, unless `CLOSEDLOOP_TEST_REQUIRE_POSTGRES=1` makes it a failure.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use closedloop_semconv::attribute::{self as attr, FeedbackSignal};
use closedloop_store::records::SpanRef;
use closedloop_store::{Access, Connection, Engine, StoreConfig, StoreUrl};
use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::binary::{serve, serve_command, Serving};
use support::*;

const SECRET: &str = "multi-receiver-test-feedback-token-secret";
const RECEIVERS: usize = 3;
const SESSIONS: usize = 12;
const TURNS: usize = 4;
/// Every third session rephrases its first query in its second turn.
const REPHRASE_EVERY: usize = 3;
/// `export.max_batch_spans`: small, so that the duplicate bound (one batch per receiver
/// killed) is tight.
const MAX_BATCH_SPANS: usize = 16;
/// `join.wait_secs`: how long feedback waits for its response before it is recorded
/// unenriched.
const JOIN_WAIT_SECS: u64 = 15;
/// Items (a response and its feedback) streamed while one receiver is killed.
const STREAM_ITEMS: usize = 240;
const STREAM_WORKERS: usize = 4;
/// How long the store and the sink may take to show what the test waits for. Generous: a
/// killed receiver's export leases must expire before the others take its rows.
const DEADLINE: Duration = Duration::from_secs(300);

const MINUTE_NS: u64 = 60_000_000_000;

/// Unrelated questions: consecutive turns of a session never rephrase each other.
const QUESTIONS: [&str; 8] = [
    "How do I reset my password?",
    "Which plans include priority phone support?",
    "Can I export invoices as CSV files?",
    "Why was my card declined at checkout yesterday?",
    "Where do I change the shipping address of an order?",
    "Does the mobile app work offline on Android tablets?",
    "What happens to shared folders when a teammate leaves?",
    "Is two-factor authentication available for admins?",
];
/// A question and the same question in other words.
const REPHRASED: (&str, &str) = (
    "How do I cancel my subscription?",
    "What is the process for cancelling my subscription?",
);

/// The response spans' enrichment, varied per turn so that a record enriched from the wrong
/// span shows.
const TEMPLATES: [(&str, &str); 3] = [
    ("answer_with_context", "v3"),
    ("summarise_ticket", "v7"),
    ("answer_with_context", "v4"),
];
const MODELS: [&str; 3] = ["gpt-4o", "claude-sonnet-4", "llama-3.1-70b"];
const CHUNKS: [&[&str]; 3] = [
    &["kb-reset-password#2", "kb-account-locked#0"],
    &["kb-billing#5"],
    &["kb-shipping#1", "kb-orders#3", "kb-returns#0"],
];

// ---------------------------------------------------------------------------------------
// A fresh database.

/// A database of its own for this run, created on the server `CLOSEDLOOP_TEST_POSTGRES_URL`
/// names and dropped when this is dropped (after the receivers stopped).
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    /// `None` (the test is skipped) without a test server.
    fn create() -> Option<Database> {
        let Ok(admin_url) = std::env::var("CLOSEDLOOP_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CLOSEDLOOP_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CLOSEDLOOP_TEST_REQUIRE_POSTGRES=1 but CLOSEDLOOP_TEST_POSTGRES_URL is not set \
                 (eval \"$(scripts/postgres.sh start DIR)\")"
            );
            eprintln!(
                "multi_receiver: skipped, CLOSEDLOOP_TEST_POSTGRES_URL is not set \
                 (eval \"$(scripts/postgres.sh start DIR)\" sets it)"
            );
            return None;
        };
        let name = format!("closedloop_multi_{:016x}", rand::random::<u64>());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let url = with_database(&admin_url, &name);
        Some(Database {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Not asserted: a panic while the test unwinds would abort it.
        let dropped = Command::new("psql")
            .args(["-X", "-q", "-d", &self.admin_url, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
        if !dropped.is_ok_and(|output| output.status.success()) {
            eprintln!("multi_receiver: could not drop database {}", self.name);
        }
    }
}

/// Runs one statement with `psql` (the server's own client; no PostgreSQL client library
/// outside the store crate).
fn psql(url: &str, statement: &str) {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            statement,
        ])
        .output()
        .expect("run psql (postgresql-client)");
    assert!(
        output.status.success(),
        "psql {statement:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `url` with its database replaced by `name`: the path of a `postgres://` URL, or the
/// `dbname` of a `key=value` connection string.
fn with_database(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url} dbname={name}");
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split('/').next().unwrap_or(location);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The receivers.

/// Three `closedloop serve` processes on one database, exporting to one sink.
struct Cluster {
    _dir: tempfile::TempDir,
    store_url: String,
    receivers: Vec<Option<Serving>>,
    addrs: Vec<SocketAddr>,
    /// Receivers no request is sent to any more (killed, or about to be).
    dead: Arc<Mutex<BTreeSet<usize>>>,
    client: reqwest::Client,
}

impl Cluster {
    fn start(database: &Database, sink: &Sink) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store_url = database.url.clone();
        let mut receivers = Vec::new();
        let mut addrs = Vec::new();
        for index in 0..RECEIVERS {
            let config = write_config(dir.path(), index, sink.addr);
            let serving = serve(receiver_command(serve_command(&config), &store_url));
            addrs.push(serving.http_addr);
            receivers.push(Some(serving));
        }
        Cluster {
            _dir: dir,
            store_url,
            receivers,
            addrs,
            dead: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed.
    fn kill(&mut self, index: usize) {
        self.dead.lock().unwrap().insert(index);
        let mut serving = self.receivers[index].take().expect("receiver running");
        serving.child.kill().unwrap();
        serving.child.wait().unwrap();
    }

    /// The failure records in the shared store, by id.
    async fn records(&self) -> BTreeMap<String, Item> {
        self.with_store(|conn| {
            let mut records = BTreeMap::new();
            for record in conn.triage_records().unwrap() {
                let id = record_id((record.key.trace_id, record.key.span_id));
                let item = Item {
                    revision: record.revision,
                    signals: record
                        .signals
                        .iter()
                        .map(|signal| signal.as_str().to_owned())
                        .collect(),
                };
                assert!(
                    records.insert(id.clone(), item).is_none(),
                    "{id} listed twice"
                );
            }
            records
        })
        .await
    }

    /// Runs `read` on a connection of its own to the shared store (the client blocks, so on
    /// a blocking thread).
    async fn with_store<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> T {
        let config = StoreConfig {
            engine: Engine::Postgres,
            url: Some(StoreUrl::new(self.store_url.clone())),
            ..StoreConfig::default()
        };
        tokio::task::spawn_blocking(move || {
            let mut conn = Connection::open(&config, Access::Reader).expect("open the store");
            read(&mut conn)
        })
        .await
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for serving in self.receivers.iter_mut().flatten() {
            let _ = serving.child.kill();
            let _ = serving.child.wait();
        }
    }
}

/// A receiver still serving, at random, other than `not` when another one serves.
fn pick_live(dead: &Mutex<BTreeSet<usize>>, not: Option<usize>) -> usize {
    let dead = dead.lock().unwrap();
    let live: Vec<usize> = (0..RECEIVERS).filter(|i| !dead.contains(i)).collect();
    let others: Vec<usize> = live.iter().copied().filter(|i| Some(*i) != not).collect();
    let from = if others.is_empty() { &live } else { &others };
    from[rand::random_range(0..from.len())]
}

/// The configuration of receiver `index`. Each names a SQLite file of its own, which
/// `engine = "postgres"` must ignore: a receiver that used it would share nothing.
fn write_config(dir: &Path, index: usize, sink: SocketAddr) -> PathBuf {
    let path = dir.join(format!("receiver-{index}.toml"));
    let store = dir.join(format!("receiver-{index}.db"));
    std::fs::write(
        &path,
        format!(
            "[store]\nengine = \"postgres\"\npath = {store:?}\nstore_content = true\n\n\
             [feedback]\nrate_limit_per_min = 0\n\n\
             [join]\nwait_secs = {JOIN_WAIT_SECS}\n\n\
             [export]\nuse_env = false\nendpoint = \"http://{sink}\"\nprotocol = \"grpc\"\n\
             max_batch_spans = {MAX_BATCH_SPANS}\ntimeout_millis = 30000\n"
        ),
    )
    .unwrap();
    path
}

/// `command` with the store URL and token secret from the environment, and nothing of the
/// test's own environment that would change the configuration.
fn receiver_command(mut command: Command, store_url: &str) -> Command {
    command
        .env("CLOSEDLOOP_STORE_URL", store_url)
        .env("CLOSEDLOOP_FEEDBACK_TOKEN_SECRET", SECRET)
        .env_remove("CLOSEDLOOP_CONFIG")
        .env_remove("CLOSEDLOOP_STORE_PATH")
        .env_remove("CLOSEDLOOP_EXPORT_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    command
}

/// What the store says of a failure record (as `closedloop triage list` shows it).
#[derive(Clone, Debug, PartialEq)]
struct Item {
    revision: i64,
    signals: BTreeSet<String>,
}

/// `fr_<trace id>_<span id>`: the id of the record of the response `ids`.
fn record_id(ids: Ids) -> String {
    format!("fr_{}_{}", hex::encode(ids.0), hex::encode(ids.1))
}

// ---------------------------------------------------------------------------------------
// Requests.

/// Why a request was not acknowledged.
#[derive(Debug)]
enum Refused {
    /// No answer (connection refused or reset: the receiver died).
    NoAnswer(reqwest::Error),
    /// An answer other than 2xx.
    Status(reqwest::StatusCode),
}

async fn post_spans(
    client: &reqwest::Client,
    addr: SocketAddr,
    spans: Vec<Span>,
) -> Result<(), Refused> {
    let reply = client
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(spans).encode_to_vec())
        .send()
        .await
        .map_err(Refused::NoAnswer)?;
    let status = reply.status();
    // The body is read too: an answer cut off by a kill is no acknowledgement.
    reply.bytes().await.map_err(Refused::NoAnswer)?;
    if status.is_success() {
        Ok(())
    } else {
        Err(Refused::Status(status))
    }
}

async fn post_feedback(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: &serde_json::Value,
) -> Result<(), Refused> {
    let reply = client
        .post(format!("http://{addr}/v1/feedback"))
        .json(body)
        .send()
        .await
        .map_err(Refused::NoAnswer)?;
    let status = reply.status();
    let answer: serde_json::Value = reply.json().await.map_err(Refused::NoAnswer)?;
    if status.is_success() {
        assert!(answer["feedback_id"].is_string(), "{answer}");
        Ok(())
    } else {
        Err(Refused::Status(status))
    }
}

/// `send` again while the receiver sheds load (503, as a client honouring `Retry-After`
/// does), up to a limit; any other refusal at once.
async fn patiently<F: std::future::Future<Output = Result<(), Refused>>>(
    mut send: impl FnMut() -> F,
) -> Result<(), Refused> {
    let mut attempts = 0;
    loop {
        match send().await {
            Err(Refused::Status(status)) if status == 503 && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

/// A feedback API body judging `response`, with a token minted as the application would.
fn feedback_body(response: Ids, signal: &str, idempotency_id: &str) -> serde_json::Value {
    let token = issue_feedback_token(
        SECRET.as_bytes(),
        TraceId::from_bytes(response.0),
        SpanId::from_bytes(response.1),
        SystemTime::now() + Duration::from_secs(3600),
    );
    serde_json::json!({
        "response": { "trace_id": hex::encode(response.0), "span_id": hex::encode(response.1) },
        "signal": signal,
        "feedback_token": token,
        "idempotency_id": idempotency_id,
    })
}

/// The ids of the feedback span of a stream item that judges `ids`: in the judged trace, and
/// the same on every send of the item.
fn feedback_ids(ids: Ids) -> Ids {
    (ids.0, ids.1.map(|byte| byte ^ 0x5a))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The enrichment of response number `n`.
fn generation(n: usize, session_id: &'static str) -> Generation {
    let (template_id, template_version) = TEMPLATES[n % TEMPLATES.len()];
    Generation {
        chunk_ids: Some(CHUNKS[(n / 3) % CHUNKS.len()].to_vec()),
        template_id,
        template_version,
        model: MODELS[(n / 2) % MODELS.len()],
        session_id,
        ..Generation::default()
    }
}

/// The response span of one turn: started `minute` minutes after `session_start_ns`, with the
/// query's fingerprint, and its text when `with_text`.
fn turn_span(
    ids: Ids,
    generation: &Generation,
    query: &str,
    session_start_ns: u64,
    minute: u64,
    with_text: bool,
) -> Span {
    let mut span = generation_span(ids, generation);
    span.start_time_unix_nano = session_start_ns + minute * MINUTE_NS;
    span.end_time_unix_nano = span.start_time_unix_nano + 2_000_000_000;
    for kv in &mut span.attributes {
        if kv.key == attr::CLOSEDLOOP_QUERY_FINGERPRINT {
            kv.value = Some(AnyValue {
                value: Some(Value::StringValue(
                    closedloop_tracing::fingerprint(query).to_string(),
                )),
            });
        }
    }
    if with_text {
        span.attributes
            .push(text(attr::CLOSEDLOOP_QUERY_TEXT, query));
    }
    span
}

// ---------------------------------------------------------------------------------------
// The sink's view.

/// The record spans at the sink, by record id and revision, with the number of copies.
struct Arrived {
    by_record: HashMap<String, BTreeMap<i64, (usize, Exported)>>,
    duplicates: usize,
}

fn arrived(sink: &Sink) -> Arrived {
    let mut by_record: HashMap<String, BTreeMap<i64, (usize, Exported)>> = HashMap::new();
    let mut copies: HashMap<(Vec<u8>, Vec<u8>), usize> = HashMap::new();
    for exported in sink.spans() {
        let response_span_id = exported
            .str(attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID)
            .expect("a failure record span")
            .to_owned();
        let id = format!(
            "fr_{}_{response_span_id}",
            hex::encode(&exported.span.trace_id)
        );
        let revision = exported
            .int(attr::CLOSEDLOOP_FAILURE_REVISION)
            .expect("closedloop.failure.revision");
        *copies
            .entry((
                exported.span.trace_id.clone(),
                exported.span.span_id.clone(),
            ))
            .or_default() += 1;
        let slot = by_record
            .entry(id)
            .or_default()
            .entry(revision)
            .or_insert((0, exported.clone()));
        slot.0 += 1;
        assert_eq!(
            slot.1.span.span_id, exported.span.span_id,
            "one span id per revision"
        );
    }
    let duplicates = copies.values().map(|n| n - 1).sum();
    Arrived {
        by_record,
        duplicates,
    }
}

impl Arrived {
    /// Whether every revision up to `revision` of record `id` arrived.
    fn has_all(&self, id: &str, revision: i64) -> bool {
        self.by_record
            .get(id)
            .is_some_and(|revisions| (1..=revision).all(|r| revisions.contains_key(&r)))
    }

    fn latest(&self, id: &str) -> &Exported {
        let revisions = &self.by_record[id];
        &revisions.values().next_back().unwrap().1
    }
}

/// Polls until the store lists every record of `expected` at its expected revision and the
/// sink holds every revision of every listed record; returns the records listed then.
async fn settle(
    cluster: &Cluster,
    sink: &Sink,
    expected: &BTreeMap<String, Item>,
) -> BTreeMap<String, Item> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records = cluster.records().await;
        let arrived = arrived(sink);
        let missing: Vec<&String> = expected
            .iter()
            .filter(|(id, item)| {
                records
                    .get(*id)
                    .is_none_or(|record| record.revision < item.revision)
            })
            .map(|(id, _)| id)
            .collect();
        let unexported: Vec<&String> = records
            .iter()
            .filter(|(id, record)| !arrived.has_all(id, record.revision))
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() && unexported.is_empty() {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "after {DEADLINE:?}: {} records missing or behind in the store ({missing:?}), \
             {} with revisions missing at the sink ({unexported:?})",
            missing.len(),
            unexported.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Sessions.

/// What feedback a turn gets, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// None.
    Nothing,
    /// `thumbs_down` through the feedback API, once the response was acknowledged.
    ApiAfter,
    /// A `thumbs_down` feedback span in the judged trace, in a request of its own after the
    /// response's.
    SpanAfter,
    /// `thumbs_down` through the feedback API before the response span was sent.
    ApiBefore,
    /// `thumbs_up` through the feedback API: stored, no record.
    Positive,
    /// A `thumbs_down` feedback span sent before the response span.
    SpanBefore,
}

const PLANS: [Plan; 6] = [
    Plan::Nothing,
    Plan::ApiAfter,
    Plan::SpanAfter,
    Plan::ApiBefore,
    Plan::Positive,
    Plan::SpanBefore,
];

/// One turn as sent: its response, where it went, and what was judged.
struct Turn {
    ids: Ids,
    generation: Generation,
    plan: Plan,
}

/// Sends the turns of session `s` one after another, each response and each feedback to a
/// receiver picked at random (the rephrasing turn to another receiver than the turn it
/// rephrases); returns the turns.
async fn run_session(
    client: reqwest::Client,
    addrs: Vec<SocketAddr>,
    dead: Arc<Mutex<BTreeSet<usize>>>,
    s: usize,
    session_start_ns: u64,
) -> Vec<Turn> {
    let session_id = leak(format!("multi-session-{s}"));
    let rephrases = s.is_multiple_of(REPHRASE_EVERY);
    let mut turns = Vec::new();
    let mut previous_receiver = None;
    for t in 0..TURNS {
        let n = s * TURNS + t;
        let ids = ids();
        let generation = generation(n, session_id);
        let plan = PLANS[(n + s) % PLANS.len()];
        let query = match (rephrases, t) {
            (true, 0) => REPHRASED.0,
            (true, 1) => REPHRASED.1,
            _ => QUESTIONS[n % QUESTIONS.len()],
        };
        let with_text = rephrases && s.is_multiple_of(2);
        let response = turn_span(
            ids,
            &generation,
            query,
            session_start_ns,
            t as u64,
            with_text,
        );
        let feedback_id = format!("multi-fb-{s}-{t}");
        let negative_span = || feedback_span(child(ids), Some(ids), "thumbs_down", vec![]);
        let send = |addr: usize, spans: Vec<Span>| {
            let client = client.clone();
            let addr = addrs[addr];
            async move { patiently(|| post_spans(&client, addr, spans.clone())).await }
        };

        match plan {
            Plan::ApiBefore => {
                let body = feedback_body(ids, "thumbs_down", &feedback_id);
                let to = pick_live(&dead, None);
                patiently(|| post_feedback(&client, addrs[to], &body))
                    .await
                    .unwrap();
            }
            Plan::SpanBefore => send(pick_live(&dead, None), vec![negative_span()])
                .await
                .unwrap(),
            _ => {}
        }
        let receiver = if rephrases && t == 1 {
            pick_live(&dead, previous_receiver)
        } else {
            pick_live(&dead, None)
        };
        send(receiver, vec![response]).await.unwrap();
        previous_receiver = Some(receiver);
        match plan {
            Plan::ApiAfter | Plan::Positive => {
                let signal = if plan == Plan::Positive {
                    "thumbs_up"
                } else {
                    "thumbs_down"
                };
                let body = feedback_body(ids, signal, &feedback_id);
                let to = addrs[pick_live(&dead, None)];
                patiently(|| post_feedback(&client, to, &body))
                    .await
                    .unwrap();
            }
            Plan::SpanAfter => send(pick_live(&dead, None), vec![negative_span()])
                .await
                .unwrap(),
            _ => {}
        }
        turns.push(Turn {
            ids,
            generation,
            plan,
        });
    }
    turns
}

/// The records `turns` must yield: one per response with negative feedback, and one for the
/// first turn of each rephrasing session (the detector's `rephrase` feedback).
fn expected_records(sessions: &[Vec<Turn>]) -> BTreeMap<String, (Item, Generation)> {
    let mut expected = BTreeMap::new();
    for (s, turns) in sessions.iter().enumerate() {
        for (t, turn) in turns.iter().enumerate() {
            let mut signals = BTreeSet::new();
            if matches!(
                turn.plan,
                Plan::ApiAfter | Plan::SpanAfter | Plan::ApiBefore | Plan::SpanBefore
            ) {
                signals.insert("thumbs_down".to_owned());
            }
            if s.is_multiple_of(REPHRASE_EVERY) && t == 0 {
                signals.insert("rephrase".to_owned());
            }
            if !signals.is_empty() {
                let item = Item {
                    revision: signals.len() as i64,
                    signals,
                };
                expected.insert(record_id(turn.ids), (item, turn.generation.clone()));
            }
        }
    }
    expected
}

/// The test's own data is what it means to be: consecutive turns are unrelated, except the
/// rephrasing, which is a rephrasing and not a repetition, by fingerprint and by text.
fn check_queries() {
    use closedloop_tracing::{fingerprint, query_similarity};
    let rephrase = fingerprint(REPHRASED.0)
        .similarity(&fingerprint(REPHRASED.1))
        .unwrap();
    assert!((0.75..0.95).contains(&rephrase), "{rephrase}");
    let rephrase_text = query_similarity(REPHRASED.0, REPHRASED.1).unwrap();
    assert!((0.75..0.95).contains(&rephrase_text), "{rephrase_text}");
    let mut all: Vec<&str> = QUESTIONS.to_vec();
    all.extend([REPHRASED.0, REPHRASED.1]);
    for (i, a) in QUESTIONS.iter().enumerate() {
        for b in all.iter().filter(|b| *b != a) {
            let by_fingerprint = fingerprint(a).similarity(&fingerprint(b)).unwrap();
            assert!(by_fingerprint < 0.5, "{i}: {a:?} ~ {b:?}: {by_fingerprint}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The stream a receiver dies in.

/// One item of the stream.
#[derive(Clone, Copy, Debug)]
enum StreamItem {
    /// A response and a `thumbs_down` feedback span on it, in one OTLP request.
    Bundle(Ids, usize),
    /// `thumbs_down` through the feedback API on a response indexed before the stream.
    Api(Ids, usize),
}

impl StreamItem {
    fn ids(self) -> Ids {
        match self {
            StreamItem::Bundle(ids, _) | StreamItem::Api(ids, _) => ids,
        }
    }

    fn number(self) -> usize {
        match self {
            StreamItem::Bundle(_, n) | StreamItem::Api(_, n) => n,
        }
    }
}

/// What happened to the items of the stream.
#[derive(Default)]
struct Outcomes {
    /// Items a receiver acknowledged, with the receiver.
    acknowledged: Vec<(StreamItem, usize)>,
    /// Items the dying receiver did not acknowledge and that were not sent again.
    abandoned: Vec<StreamItem>,
    /// Items sent again after the dying receiver did not acknowledge them.
    retried: usize,
}

fn stream_generation(n: usize) -> Generation {
    generation(n, leak(format!("multi-stream-{n}")))
}

fn stream_span(ids: Ids, n: usize) -> Span {
    let mut span = generation_span(ids, &stream_generation(n));
    // Each stream item is a session of one turn, whose query matches no other.
    for kv in &mut span.attributes {
        if kv.key == attr::CLOSEDLOOP_QUERY_FINGERPRINT {
            kv.value = Some(AnyValue {
                value: Some(Value::StringValue(
                    closedloop_tracing::fingerprint(&format!("stream question {n}")).to_string(),
                )),
            });
        }
    }
    span
}

/// Sends items until none is left. An item a live receiver did not acknowledge is sent again
/// (as a client retries); of those the killed receiver did not acknowledge, every other one
/// is abandoned instead, to check what a receiver dying mid-request leaves behind.
async fn stream_worker(
    client: reqwest::Client,
    addrs: Vec<SocketAddr>,
    dead: Arc<Mutex<BTreeSet<usize>>>,
    queue: Arc<Mutex<VecDeque<StreamItem>>>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    loop {
        let Some(item) = queue.lock().unwrap().pop_front() else {
            return;
        };
        let to = pick_live(&dead, None);
        let result = match item {
            StreamItem::Bundle(ids, n) => {
                let spans = vec![
                    stream_span(ids, n),
                    // The same feedback span every time the item is sent: a retry after the
                    // kill repeats the request, it is not new feedback.
                    feedback_span(feedback_ids(ids), Some(ids), "thumbs_down", vec![]),
                ];
                post_spans(&client, addrs[to], spans).await
            }
            StreamItem::Api(ids, n) => {
                let body = feedback_body(ids, "thumbs_down", &format!("multi-stream-fb-{n}"));
                post_feedback(&client, addrs[to], &body).await
            }
        };
        let mut outcomes = outcomes.lock().unwrap();
        match result {
            Ok(()) => outcomes.acknowledged.push((item, to)),
            Err(refused) => {
                let died = dead.lock().unwrap().contains(&to);
                match refused {
                    _ if died && item.number() % 2 == 1 => outcomes.abandoned.push(item),
                    Refused::Status(status) if !died && status != 503 => {
                        panic!("receiver {to} answered {item:?} with {status}")
                    }
                    Refused::NoAnswer(error) if !died => {
                        panic!("receiver {to} did not answer {item:?}: {error}")
                    }
                    _ => {
                        outcomes.retried += 1;
                        queue.lock().unwrap().push_back(item);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_receivers_share_one_postgres_store() {
    let Some(database) = Database::create() else {
        return;
    };
    check_queries();
    let sink = Sink::grpc().await;
    let mut cluster = Cluster::start(&database, &sink);

    // Sessions, concurrently; the turns of each in order, a minute apart.
    let now = now_ns();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|s| {
            tokio::spawn(run_session(
                cluster.client.clone(),
                cluster.addrs.clone(),
                cluster.dead.clone(),
                s,
                now - 3_600_000_000_000 + s as u64 * 10 * MINUTE_NS,
            ))
        })
        .collect();
    let mut turns = Vec::new();
    for session in sessions {
        turns.push(session.await.unwrap());
    }
    for plan in PLANS {
        assert!(turns.iter().flatten().any(|turn| turn.plan == plan));
    }
    let expected = expected_records(&turns);
    let expected_items: BTreeMap<String, Item> = expected
        .iter()
        .map(|(id, (item, _))| (id.clone(), item.clone()))
        .collect();

    let records = settle(&cluster, &sink, &expected_items).await;
    assert_eq!(
        records, expected_items,
        "one record per judged response, a revision per negative feedback, nothing else"
    );
    let responses: Vec<Ids> = turns.iter().flatten().map(|turn| turn.ids).collect();
    let unstored = cluster
        .with_store(move |conn| {
            responses
                .into_iter()
                .filter(|&(trace_id, span_id)| {
                    let key = SpanRef { trace_id, span_id };
                    conn.response_by_span(key).unwrap().is_none()
                })
                .count()
        })
        .await;
    assert_eq!(unstored, 0, "every acknowledged response is in the store");
    let rephrased = records
        .values()
        .filter(|item| item.signals.contains("rephrase"))
        .count();
    assert_eq!(rephrased, SESSIONS.div_ceil(REPHRASE_EVERY));
    let at_sink = arrived(&sink);
    assert_eq!(
        at_sink.by_record.len(),
        records.len(),
        "the sink has records of exactly the listed ones"
    );
    for (id, (_, generation)) in &expected {
        let latest = at_sink.latest(id);
        let turn = turns
            .iter()
            .flatten()
            .find(|turn| record_id(turn.ids) == *id)
            .unwrap();
        assert_eq!(
            latest.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED),
            Some(true),
            "{id} ({:?}, revision {:?}) is not enriched",
            turn.plan,
            latest.int(attr::CLOSEDLOOP_FAILURE_REVISION)
        );
        assert_eq!(
            (
                latest.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID),
                latest.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL)
            ),
            (Some(generation.template_id), Some(generation.model)),
            "{id} ({:?}): enriched from its response span",
            turn.plan
        );
        assert_enriched_record(latest, turn.ids, generation);
    }
    assert_eq!(
        at_sink.duplicates, 0,
        "no receiver died and no export failed: nothing is sent twice"
    );
    eprintln!(
        "multi_receiver: {} responses, {} records ({rephrased} by the rephrase detector), \
         {} spans at the sink",
        SESSIONS * TURNS,
        records.len(),
        sink.spans().len()
    );

    // Responses the stream's feedback API items judge, indexed by all receivers.
    let mut items = VecDeque::new();
    for n in 0..STREAM_ITEMS {
        let ids = ids();
        if n % 3 == 2 {
            post_spans(
                &cluster.client,
                cluster.addrs[n % RECEIVERS],
                vec![stream_span(ids, n)],
            )
            .await
            .unwrap();
            items.push_back(StreamItem::Api(ids, n));
        } else {
            items.push_back(StreamItem::Bundle(ids, n));
        }
    }

    // The stream, and SIGKILL of receiver 0 once a third of it was acknowledged.
    let queue = Arc::new(Mutex::new(items));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let workers: Vec<_> = (0..STREAM_WORKERS)
        .map(|_| {
            tokio::spawn(stream_worker(
                cluster.client.clone(),
                cluster.addrs.clone(),
                cluster.dead.clone(),
                queue.clone(),
                outcomes.clone(),
            ))
        })
        .collect();
    let kill_deadline = Instant::now() + DEADLINE;
    while outcomes.lock().unwrap().acknowledged.len() < STREAM_ITEMS / 3 {
        assert!(Instant::now() < kill_deadline, "the stream stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(0);
    assert!(
        !queue.lock().unwrap().is_empty(),
        "the kill came after the whole stream; nothing was tested mid-stream"
    );
    for worker in workers {
        worker.await.unwrap();
    }
    let outcomes = Arc::into_inner(outcomes).unwrap().into_inner().unwrap();
    let by_killed = outcomes
        .acknowledged
        .iter()
        .filter(|(_, to)| *to == 0)
        .count();
    assert!(by_killed > 0, "the killed receiver acknowledged nothing");

    // Everything acknowledged: exactly one record, enriched, at revision 1 (an item sent
    // again after the kill is not counted twice), all exported by the survivors.
    let mut expected_after = expected_items.clone();
    let mut stream_expected = BTreeMap::new();
    for (item, _) in &outcomes.acknowledged {
        let record = Item {
            revision: 1,
            signals: BTreeSet::from(["thumbs_down".to_owned()]),
        };
        expected_after.insert(record_id(item.ids()), record);
        stream_expected.insert(record_id(item.ids()), *item);
    }
    let records = settle(&cluster, &sink, &expected_after).await;
    let abandoned: BTreeMap<String, StreamItem> = outcomes
        .abandoned
        .iter()
        .map(|item| (record_id(item.ids()), *item))
        .collect();
    for (id, record) in &records {
        if let Some(expected) = expected_after.get(id) {
            assert_eq!(record, expected, "{id}");
        } else {
            assert!(
                abandoned.contains_key(id),
                "unexpected record {id}: {record:?}"
            );
        }
    }
    let at_sink = arrived(&sink);
    for (id, item) in &stream_expected {
        assert_enriched_record(
            at_sink.latest(id),
            item.ids(),
            &stream_generation(item.number()),
        );
    }

    // In the store: every acknowledged response and feedback, and of each request the
    // killed receiver did not acknowledge, all of it or nothing.
    let acknowledged: Vec<StreamItem> = outcomes
        .acknowledged
        .iter()
        .map(|(item, _)| *item)
        .collect();
    let abandoned_items = outcomes.abandoned.clone();
    let (stored, abandoned_stored) = cluster
        .with_store(move |conn| {
            let mut stored = |item: &StreamItem| {
                let (trace_id, span_id) = item.ids();
                let key = SpanRef { trace_id, span_id };
                let response = conn.response_by_span(key).unwrap().is_some();
                let feedback = conn.has_signal(key, FeedbackSignal::ThumbsDown).unwrap();
                let enriched = conn.failure_state(key).unwrap().map(|state| state.enriched);
                (*item, response, feedback, enriched)
            };
            let acknowledged: Vec<_> = acknowledged.iter().map(&mut stored).collect();
            let abandoned: Vec<_> = abandoned_items.iter().map(&mut stored).collect();
            (acknowledged, abandoned)
        })
        .await;
    for (item, response, feedback, enriched) in stored {
        assert!(
            response && feedback,
            "{item:?} acknowledged but lost: response {response}, feedback {feedback}"
        );
        assert_eq!(enriched, Some(true), "{item:?}");
    }
    let mut abandoned_recorded = 0;
    for (item, response, feedback, enriched) in abandoned_stored {
        match item {
            StreamItem::Bundle(..) => assert_eq!(
                response, feedback,
                "{item:?} half-written: response {response}, feedback {feedback}"
            ),
            StreamItem::Api(..) => assert!(response, "{item:?}: indexed before the stream"),
        }
        if feedback {
            abandoned_recorded += 1;
            assert_eq!(enriched, Some(true), "{item:?}");
            let id = record_id(item.ids());
            assert_eq!(records[&id].revision, 1, "{id}");
            assert_enriched_record(
                at_sink.latest(&id),
                item.ids(),
                &stream_generation(item.number()),
            );
        } else {
            assert_eq!(enriched, None, "{item:?}: a record without its feedback");
        }
    }
    assert!(
        at_sink.duplicates <= MAX_BATCH_SPANS,
        "{} duplicates after one kill; the bound is one export batch ({MAX_BATCH_SPANS})",
        at_sink.duplicates
    );
    eprintln!(
        "multi_receiver: stream of {STREAM_ITEMS} items, receiver 0 killed after acknowledging \
         {by_killed}; {} sent again, {} abandoned ({abandoned_recorded} of them committed \
         before the kill); {} duplicate spans at the sink (bound {MAX_BATCH_SPANS})",
        outcomes.retried,
        abandoned.len(),
        at_sink.duplicates
    );
    drop(cluster);
    drop(database);
}
