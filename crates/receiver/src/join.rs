//! Matching feedback to the response it judges.

use serde::Deserialize;

/// The `[join]` section: how long and how much feedback may wait for its response span.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// How long feedback whose response span has not arrived yet waits for it, in seconds.
    /// After that the failure record is written unenriched (`closedloop.failure.enriched` =
    /// false). Default 30.
    #[serde(default = "default_wait_secs")]
    pub wait_secs: u64,
    /// The most feedback items waiting for their response span at once. When full, the
    /// oldest waiting item is recorded unenriched at once. Default 10000.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// The most traces whose retrieval results are remembered so that a later LLM span of the
    /// same trace without `closedloop.context.chunk_ids` can take them (OpenInference and
    /// OpenLLMetry put chunk ids on the retriever span only). Default 10000.
    #[serde(default = "default_max_retrieval_traces")]
    pub max_retrieval_traces: usize,
}

const fn default_wait_secs() -> u64 {
    30
}

const fn default_max_pending() -> usize {
    10_000
}

const fn default_max_retrieval_traces() -> usize {
    10_000
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            wait_secs: default_wait_secs(),
            max_pending: default_max_pending(),
            max_retrieval_traces: default_max_retrieval_traces(),
        }
    }
}
