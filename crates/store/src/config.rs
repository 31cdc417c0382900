use std::path::PathBuf;

use serde::Deserialize;

use crate::Engine;

/// The `[store]` section: where the receiver keeps what it learns, and for how long.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The engine: `sqlite` (one embedded file, the default) or `postgres` (a database that
    /// several receivers share; see `url`).
    #[serde(default)]
    pub engine: Engine,
    /// The PostgreSQL connection string (`postgres://user:password@host:port/database` or
    /// libpq's `key=value` form), for `engine = "postgres"`; `CLOSEDLOOP_STORE_URL` sets it
    /// from the environment, which keeps the password out of the file. Ignored by SQLite.
    /// closedloop connects without TLS (`sslmode=require` is refused): reach the server over
    /// a trusted network, a local socket or a TLS tunnel.
    /// Sessions end a transaction idle for five minutes and probe a silent peer after 30 s
    /// (`idle_in_transaction_session_timeout`, `tcp_keepalives_*`), so a hung receiver
    /// cannot hold the others' locks; `options=-c ...` in the string overrides them.
    #[serde(default)]
    pub url: Option<StoreUrl>,
    /// The SQLite database file (created with its directory if missing; WAL mode, so the
    /// `-wal` and `-shm` files beside it belong to it). Default `closedloop-data/closedloop.db`.
    /// Not used on PostgreSQL.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// How long indexed responses, feedback and failure records are kept, in seconds.
    /// Default 2592000 (30 days).
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
    /// The size the store may reach, in MiB. What counts: every table's used pages (responses
    /// and their content, feedback, failure records, the export outbox, webhook
    /// notifications, triage and review data) plus the WAL file; free pages do not. Checked
    /// every `prune_interval_secs`: a WAL over a tenth of the limit is first checkpointed
    /// and truncated; then, while the store is over the limit, each pass deletes the oldest
    /// tenth of one kind of row after another, measuring again after each, in this order:
    /// responses no record or waiting feedback needs, other feedback, undelivered outbox
    /// rows and webhook notifications (lost to the backend), failure records (oldest update
    /// first) with their feedback and response. A WAL a reader keeps from being truncated
    /// counts, but never makes pruning go below half the limit. Feedback still waiting for
    /// its response is never deleted by size, a
    /// response a record needs goes only with its record, and triage notes and review
    /// labels are kept. Each run makes at most ten passes, logs a warning with the counts
    /// deleted, and checkpoints and truncates the WAL afterwards; deleted outbox rows also
    /// leave the pending-exports count. Default 1024. SQLite only: on PostgreSQL the
    /// database's size is the server's business, and the store is pruned by
    /// `retention_secs` only.
    #[serde(default = "default_max_size_mib")]
    pub max_size_mib: u64,
    /// How often the pruning task runs, in seconds. Default 60.
    #[serde(default = "default_prune_interval_secs")]
    pub prune_interval_secs: u64,
    /// The most records (indexed spans plus feedback) waiting to be written. Above it,
    /// ingestion answers "overloaded" (HTTP 503 / gRPC UNAVAILABLE) so memory stays bounded
    /// whatever the input rate. Default 200000.
    #[serde(default = "default_max_queued_records")]
    pub max_queued_records: usize,
    /// The most records written in one transaction (group commit). Default 20000.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
    /// SQLite's `synchronous` setting: `full` survives power loss, `normal` survives a
    /// process crash but may lose the last commits on power loss. Default `full`. Not used
    /// on PostgreSQL (its server decides durability).
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Whether content attributes (prompt messages, output messages, query text) carried by a
    /// span are stored. Content is personal data, and many instrumentations (OpenInference,
    /// OpenLLMetry) capture prompts and answers by default, so the store keeps none unless
    /// this is true. The query fingerprint, which is not content, is stored either way.
    /// Default false.
    #[serde(default = "default_store_content")]
    pub store_content: bool,
    /// Which captured content is kept once a day is over: `reviewed_or_failed` (the default)
    /// keeps the content of the responses that have a failure record or are drawn into a
    /// review sample, and deletes the rest of a UTC day's content when that day's review
    /// sample is drawn (`review.sample_delay_secs` after the day ends; with
    /// `review.daily_sample_size = 0`, at the same moment); `all` keeps every response's
    /// content until the response itself is pruned. Feedback that makes a failure record
    /// after its day's content was deleted gets a record without the query and answer.
    #[serde(default)]
    pub content_retention: ContentRetention,
}

/// Which captured content the store keeps (`store.content_retention`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContentRetention {
    /// Only the content of responses that have a failure record or are in a review sample;
    /// the rest of a day's content goes when the day's sample is drawn.
    #[default]
    ReviewedOrFailed,
    /// Every response's content, for as long as the response is kept.
    All,
}

/// SQLite's `synchronous` pragma, in WAL mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Each commit is synced to disk before it is acknowledged.
    #[default]
    Full,
    /// The WAL is synced at checkpoints only.
    Normal,
}

fn default_path() -> PathBuf {
    PathBuf::from("closedloop-data/closedloop.db")
}

const fn default_retention_secs() -> u64 {
    30 * 24 * 60 * 60
}

const fn default_max_size_mib() -> u64 {
    1024
}

const fn default_prune_interval_secs() -> u64 {
    60
}

const fn default_max_queued_records() -> usize {
    200_000
}

const fn default_max_batch_records() -> usize {
    20_000
}

const fn default_store_content() -> bool {
    false
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            engine: Engine::default(),
            url: None,
            path: default_path(),
            retention_secs: default_retention_secs(),
            max_size_mib: default_max_size_mib(),
            prune_interval_secs: default_prune_interval_secs(),
            max_queued_records: default_max_queued_records(),
            max_batch_records: default_max_batch_records(),
            synchronous: Synchronous::default(),
            store_content: default_store_content(),
            content_retention: ContentRetention::default(),
        }
    }
}

/// A PostgreSQL connection string. It may hold a password, so `Debug` does not print it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// Wraps a connection string.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The connection string, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(<redacted>)")
    }
}
