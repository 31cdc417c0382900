//! Reading the semantic-convention fields of plain `tracing` spans.

use std::fmt;
use std::sync::Arc;

use closedloop_semconv::attribute::{
    RetrievalStage, CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_PROMPT_TEMPLATE_ID,
    CLOSEDLOOP_QUERY_FINGERPRINT, CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT, CLOSEDLOOP_QUERY_TEXT,
    CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES,
    CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, CLOSEDLOOP_RETRIEVAL_STAGE, CLOSEDLOOP_TURN_INDEX,
    GEN_AI_CONVERSATION_ID, GEN_AI_DATA_SOURCE_ID, GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL,
    SESSION_ID, USER_ID,
};
use opentelemetry::StringValue;
use tracing_core::field::{Field, Visit};

/// The field tracing-opentelemetry reads the span name from.
const OTEL_NAME_FIELD: &str = "otel.name";

/// Scans a span's declared fields: whether any may matter to the layer, and whether the span
/// declares `otel.name`.
pub(super) fn scan(fields: &tracing_core::field::FieldSet) -> (bool, bool) {
    let (mut relevant, mut named) = (false, false);
    for field in fields {
        let name = field.name();
        relevant |= is_relevant(name);
        named |= name == OTEL_NAME_FIELD;
    }
    (relevant, named)
}

/// Whether a field name may matter to the layer; a cheap prefix test run on every span.
pub(super) fn is_relevant(name: &str) -> bool {
    name.starts_with("gen_ai.")
        || name.starts_with("closedloop.")
        || name == SESSION_ID
        || name == USER_ID
}

/// The values of the fields the layer understands, from one `new_span` or `record` call.
#[derive(Debug, Default)]
pub(super) struct FieldValues {
    pub(super) operation: Option<Operation>,
    pub(super) stage: Option<RetrievalStage>,
    pub(super) model: Option<StringValue>,
    pub(super) data_source: Option<StringValue>,
    pub(super) chunk_ids: Option<Arc<[StringValue]>>,
    pub(super) chunk_scores: Option<Arc<[f64]>>,
    pub(super) index_version: Option<StringValue>,
    pub(super) session_id: Option<StringValue>,
    pub(super) user_id: Option<StringValue>,
    pub(super) conversation_id: Option<StringValue>,
    pub(super) turn_index: Option<i64>,
    pub(super) fingerprint: Option<StringValue>,
    pub(super) semantic_fingerprint: Option<StringValue>,
    pub(super) query_text: Option<StringValue>,
    pub(super) has_template: bool,
    pub(super) has_context_chunks: bool,
    pub(super) has_otel_name: bool,
    pub(super) any: bool,
}

impl FieldValues {
    fn string(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let owned = || shared(value);
        match name {
            GEN_AI_OPERATION_NAME => self.operation = Some(Operation::parse(value)),
            CLOSEDLOOP_RETRIEVAL_STAGE => self.stage = value.parse().ok(),
            // The model only matters for naming spans that have no `otel.name`.
            GEN_AI_REQUEST_MODEL if !self.has_otel_name => self.model = Some(owned()),
            GEN_AI_REQUEST_MODEL => {}
            GEN_AI_DATA_SOURCE_ID => self.data_source = Some(owned()),
            CLOSEDLOOP_RETRIEVAL_CHUNK_IDS => self.chunk_ids = Some(parse_ids(value)),
            CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES => self.chunk_scores = parse_scores(value),
            CLOSEDLOOP_RETRIEVAL_INDEX_VERSION => self.index_version = Some(owned()),
            SESSION_ID => self.session_id = Some(owned()),
            USER_ID => self.user_id = Some(owned()),
            GEN_AI_CONVERSATION_ID => self.conversation_id = Some(owned()),
            CLOSEDLOOP_TURN_INDEX => self.turn_index = value.trim().parse().ok(),
            CLOSEDLOOP_QUERY_FINGERPRINT => self.fingerprint = Some(owned()),
            // Recorded by closedloop-tracing only when query-embedding capture is on.
            CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT => self.semantic_fingerprint = Some(owned()),
            // Recorded by closedloop-tracing only when query capture is on.
            CLOSEDLOOP_QUERY_TEXT => self.query_text = Some(owned()),
            CLOSEDLOOP_PROMPT_TEMPLATE_ID => self.has_template = true,
            CLOSEDLOOP_CONTEXT_CHUNK_IDS => self.has_context_chunks = true,
            OTEL_NAME_FIELD => self.has_otel_name = true,
            _ => return,
        }
        self.any = true;
    }
}

impl Visit for FieldValues {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == CLOSEDLOOP_TURN_INDEX {
            self.turn_index = Some(value);
            self.any = true;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == CLOSEDLOOP_TURN_INDEX {
            self.turn_index = i64::try_from(value).ok();
            self.any = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `?value` arrive here; only format the fields the layer reads.
        let name = field.name();
        if name == OTEL_NAME_FIELD || is_relevant(name) {
            self.string(field, &format!("{value:?}"));
        }
    }
}

/// Parses chunk IDs from a field value: a JSON array of strings (`["a","b"]`, which is also
/// what `?vec` of string IDs prints), or a comma-separated list (`a,b,c`, blanks trimmed).
pub(super) fn parse_ids(value: &str) -> Arc<[StringValue]> {
    let trimmed = value.trim();
    if trimmed.starts_with('[') {
        if let Ok(ids) = serde_json::from_str::<Vec<&str>>(trimmed) {
            return ids.into_iter().map(shared).collect();
        }
        if let Ok(ids) = serde_json::from_str::<Vec<String>>(trimmed) {
            return ids.iter().map(|id| shared(id)).collect();
        }
    }
    // Hand-rolled split: this runs for every retrieval span with IDs in a plain field.
    let bytes = trimmed.as_bytes();
    let mut ids = Vec::with_capacity(bytes.iter().filter(|&&b| b == b',').count() + 1);
    let mut start = 0;
    for end in (0..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b',') {
        let id = trimmed[start..end].trim_ascii();
        if !id.is_empty() {
            ids.push(shared(id));
        }
        start = end + 1;
    }
    Arc::from(ids)
}

/// A string value whose clones share one allocation.
pub(crate) fn shared(value: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(value))
}

/// The `gen_ai.operation.name` values the layer tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    /// `chat`, `generate_content` or `text_completion`, kept for the span name.
    Generation(&'static str),
    /// `retrieval`.
    Retrieval,
    /// Anything else (embeddings, agents, tools).
    Other,
}

impl Operation {
    fn parse(value: &str) -> Self {
        match value {
            "chat" => Operation::Generation("chat"),
            "generate_content" => Operation::Generation("generate_content"),
            "text_completion" => Operation::Generation("text_completion"),
            "retrieval" => Operation::Retrieval,
            _ => Operation::Other,
        }
    }
}

/// Parses chunk scores: a JSON array of numbers or a comma-separated list; `None` if any score
/// is not a number.
pub(super) fn parse_scores(value: &str) -> Option<Arc<[f64]>> {
    let trimmed = value.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    if inner.trim().is_empty() {
        return Some(Arc::from([]));
    }
    inner
        .split(',')
        .map(|s| s.trim().parse::<f64>().ok())
        .collect::<Option<Vec<_>>>()
        .map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(value: &str) -> Vec<String> {
        parse_ids(value)
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    }

    #[test]
    fn chunk_ids_accept_json_debug_and_comma_encodings() {
        assert_eq!(ids(r#"["a#1","b,2"]"#), ["a#1", "b,2"]);
        assert_eq!(ids(&format!("{:?}", vec!["a#1", "b#2"])), ["a#1", "b#2"]);
        assert_eq!(ids(" a#1, b#2 ,c "), ["a#1", "b#2", "c"]);
        assert!(ids("").is_empty());
        assert!(ids("[]").is_empty());
    }

    #[test]
    fn chunk_scores_accept_json_and_comma_encodings() {
        assert_eq!(
            parse_scores("[0.5, 0.25]").as_deref(),
            Some(&[0.5, 0.25][..])
        );
        assert_eq!(parse_scores("0.5,0.25").as_deref(), Some(&[0.5, 0.25][..]));
        assert_eq!(parse_scores("0.5,high"), None);
    }
}
