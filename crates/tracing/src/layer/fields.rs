//! Reading the semantic-convention fields of plain `tracing` spans.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
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
use tracing_core::Metadata;

use super::state::RequestContext;

/// The field tracing-opentelemetry reads the span name from.
const OTEL_NAME_FIELD: &str = "otel.name";

/// What a field means to the layer, decided from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    Ignored,
    Operation,
    Stage,
    Model,
    DataSource,
    ChunkIds,
    ChunkScores,
    IndexVersion,
    SessionId,
    UserId,
    ConversationId,
    TurnIndex,
    Fingerprint,
    SemanticFingerprint,
    QueryText,
    TemplateId,
    ContextChunkIds,
    OtelName,
}

impl FieldKind {
    fn of(name: &str) -> Self {
        // A cheap prefix test first: most fields of most spans are none of these.
        let candidate = name.starts_with("gen_ai.")
            || name.starts_with("closedloop.")
            || name == SESSION_ID
            || name == USER_ID
            || name == OTEL_NAME_FIELD;
        if !candidate {
            return FieldKind::Ignored;
        }
        match name {
            GEN_AI_OPERATION_NAME => FieldKind::Operation,
            CLOSEDLOOP_RETRIEVAL_STAGE => FieldKind::Stage,
            GEN_AI_REQUEST_MODEL => FieldKind::Model,
            GEN_AI_DATA_SOURCE_ID => FieldKind::DataSource,
            CLOSEDLOOP_RETRIEVAL_CHUNK_IDS => FieldKind::ChunkIds,
            CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES => FieldKind::ChunkScores,
            CLOSEDLOOP_RETRIEVAL_INDEX_VERSION => FieldKind::IndexVersion,
            SESSION_ID => FieldKind::SessionId,
            USER_ID => FieldKind::UserId,
            GEN_AI_CONVERSATION_ID => FieldKind::ConversationId,
            CLOSEDLOOP_TURN_INDEX => FieldKind::TurnIndex,
            CLOSEDLOOP_QUERY_FINGERPRINT => FieldKind::Fingerprint,
            // Recorded by closedloop-tracing only when query-embedding capture is on.
            CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT => FieldKind::SemanticFingerprint,
            // Recorded by closedloop-tracing only when query capture is on.
            CLOSEDLOOP_QUERY_TEXT => FieldKind::QueryText,
            CLOSEDLOOP_PROMPT_TEMPLATE_ID => FieldKind::TemplateId,
            CLOSEDLOOP_CONTEXT_CHUNK_IDS => FieldKind::ContextChunkIds,
            OTEL_NAME_FIELD => FieldKind::OtelName,
            _ => FieldKind::Ignored,
        }
    }
}

/// The most fields a callsite's kinds are kept for; `tracing`'s macros allow 32.
const MAX_CLASSIFIED_FIELDS: usize = 32;

/// The kinds of one callsite's declared fields, by field index: worked out once per
/// callsite, so reading a span's fields compares no names.
#[derive(Debug, Clone, Copy)]
pub(super) struct CallsiteFields {
    kinds: [FieldKind; MAX_CLASSIFIED_FIELDS],
    /// Whether any declared field may matter to the layer.
    pub(super) relevant: bool,
    /// Whether the callsite declares `otel.name`.
    pub(super) named: bool,
}

impl CallsiteFields {
    pub(super) fn of(fields: &tracing_core::field::FieldSet) -> Self {
        let mut classified = CallsiteFields {
            kinds: [FieldKind::Ignored; MAX_CLASSIFIED_FIELDS],
            relevant: false,
            named: false,
        };
        for field in fields {
            let kind = FieldKind::of(field.name());
            if let Some(slot) = classified.kinds.get_mut(field.index()) {
                *slot = kind;
            }
            classified.relevant |= kind != FieldKind::Ignored && kind != FieldKind::OtelName;
            classified.named |= kind == FieldKind::OtelName;
        }
        classified
    }

    fn kind(&self, field: &Field) -> FieldKind {
        match self.kinds.get(field.index()) {
            Some(kind) => *kind,
            None => FieldKind::of(field.name()),
        }
    }
}

/// The kinds of the fields declared at `metadata`'s callsite, worked out once per thread and
/// callsite. The cache is per thread so creating a span takes no lock and touches nothing
/// another thread writes; callsites are static, so each thread holds one entry per
/// span-creating site it has reached.
pub(super) fn callsite_fields(metadata: &'static Metadata<'static>) -> CallsiteFields {
    type Classified = HashMap<usize, CallsiteFields, BuildHasherDefault<AddressHasher>>;
    thread_local! {
        static CLASSIFIED: RefCell<Classified> = RefCell::new(HashMap::default());
    }
    let key = std::ptr::from_ref(metadata).addr();
    CLASSIFIED
        .try_with(|classified| {
            *classified
                .borrow_mut()
                .entry(key)
                .or_insert_with(|| CallsiteFields::of(metadata.fields()))
        })
        .unwrap_or_else(|_| CallsiteFields::of(metadata.fields()))
}

/// Hashes an address: a multiply, folded so the low bits (zero in aligned addresses) mix too.
#[derive(Debug, Default)]
pub(super) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mixed = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 29);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// The values of the fields the layer understands, from one `new_span` or `record` call.
#[derive(Debug, Default)]
pub(super) struct FieldValues {
    /// The kinds of the span's fields, when its callsite was classified; otherwise each field
    /// is classified by name as it is read.
    pub(super) callsite: Option<CallsiteFields>,
    pub(super) operation: Option<Operation>,
    pub(super) stage: Option<RetrievalStage>,
    pub(super) model: Option<StringValue>,
    pub(super) data_source: Option<StringValue>,
    pub(super) chunk_ids: Option<Arc<[StringValue]>>,
    pub(super) chunk_scores: Option<Arc<[f64]>>,
    pub(super) index_version: Option<StringValue>,
    /// Request-level fields, boxed because most spans have none.
    pub(super) request: Option<Box<RequestContext>>,
    pub(super) has_template: bool,
    pub(super) has_context_chunks: bool,
    pub(super) has_otel_name: bool,
    pub(super) any: bool,
}

impl FieldValues {
    /// Values to be read from the fields of a span created at a classified callsite.
    pub(super) fn of_callsite(callsite: CallsiteFields) -> Self {
        FieldValues {
            callsite: Some(callsite),
            has_otel_name: callsite.named,
            ..FieldValues::default()
        }
    }

    fn kind(&self, field: &Field) -> FieldKind {
        match &self.callsite {
            Some(callsite) => callsite.kind(field),
            None => FieldKind::of(field.name()),
        }
    }

    fn request_mut(&mut self) -> &mut RequestContext {
        self.request.get_or_insert_with(Box::default)
    }

    fn string(&mut self, kind: FieldKind, value: &str) {
        let owned = || shared(value);
        match kind {
            FieldKind::Operation => self.operation = Some(Operation::parse(value)),
            FieldKind::Stage => self.stage = value.parse().ok(),
            // The model only matters for naming spans that have no `otel.name`.
            FieldKind::Model if !self.has_otel_name => {
                self.model = Some(shared_repeated(value));
            }
            FieldKind::Model => {}
            FieldKind::DataSource => self.data_source = Some(shared_repeated(value)),
            FieldKind::ChunkIds => self.chunk_ids = Some(parse_ids(value)),
            FieldKind::ChunkScores => self.chunk_scores = parse_scores(value),
            FieldKind::IndexVersion => self.index_version = Some(shared_repeated(value)),
            FieldKind::SessionId => self.request_mut().session_id = Some(owned()),
            FieldKind::UserId => self.request_mut().user_id = Some(owned()),
            FieldKind::ConversationId => self.request_mut().conversation_id = Some(owned()),
            FieldKind::TurnIndex => self.request_mut().turn_index = value.trim().parse().ok(),
            FieldKind::Fingerprint => self.request_mut().fingerprint = Some(owned()),
            FieldKind::SemanticFingerprint => {
                self.request_mut().semantic_fingerprint = Some(owned());
            }
            FieldKind::QueryText => self.request_mut().query_text = Some(owned()),
            FieldKind::TemplateId => self.has_template = true,
            FieldKind::ContextChunkIds => self.has_context_chunks = true,
            FieldKind::OtelName => self.has_otel_name = true,
            FieldKind::Ignored => return,
        }
        self.any = true;
    }

    fn integer(&mut self, field: &Field, value: Option<i64>) {
        if self.kind(field) == FieldKind::TurnIndex {
            self.request_mut().turn_index = value;
            self.any = true;
        }
    }
}

impl Visit for FieldValues {
    fn record_str(&mut self, field: &Field, value: &str) {
        let kind = self.kind(field);
        self.string(kind, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, Some(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, i64::try_from(value).ok());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `?value` arrive here; only format the fields the layer reads.
        let kind = self.kind(field);
        if kind != FieldKind::Ignored {
            self.string(kind, &format!("{value:?}"));
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
    // This runs for every retrieval span with IDs in a plain field, so the list is split in one
    // pass into a buffer on the stack and allocated once, at its final size.
    const INLINE: usize = 32;
    let mut inline = [""; INLINE];
    let mut len = 0;
    let mut spilled: Vec<&str> = Vec::new();
    for item in comma_separated(trimmed) {
        if len < INLINE {
            inline[len] = item;
            len += 1;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&inline);
            }
            spilled.push(item);
        }
    }
    let items = if spilled.is_empty() {
        &inline[..len]
    } else {
        &spilled[..]
    };
    items.iter().map(|id| shared(id)).collect()
}

/// The non-blank items of a comma-separated list, trimmed.
fn comma_separated(list: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = Some(list);
    std::iter::from_fn(move || loop {
        let current = rest?;
        let (item, tail) = match current.as_bytes().iter().position(|&b| b == b',') {
            Some(comma) => (&current[..comma], Some(&current[comma + 1..])),
            None => (current, None),
        };
        rest = tail;
        let item = item.trim_ascii();
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// A string value whose clones share one allocation.
pub(crate) fn shared(value: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(value))
}

/// Like [`shared`], for values that repeat from span to span (a data source, an index
/// version, a model): a small per-thread cache of recent values hands out clones of one
/// allocation instead of a new one each time.
pub(super) fn shared_repeated(value: &str) -> StringValue {
    /// Longer values are not worth comparing against the cache.
    const MAX_CACHED_LEN: usize = 64;
    const SLOTS: usize = 8;
    thread_local! {
        static RECENT: RefCell<[Option<Arc<str>>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
    }
    if value.len() > MAX_CACHED_LEN {
        return shared(value);
    }
    let bytes = value.as_bytes();
    let slot = (bytes.len()
        + bytes.first().map_or(0, |&b| usize::from(b)) * 3
        + bytes.last().map_or(0, |&b| usize::from(b)) * 7)
        % SLOTS;
    RECENT
        .try_with(|recent| {
            let mut recent = recent.borrow_mut();
            match &recent[slot] {
                Some(cached) if &**cached == value => StringValue::from(Arc::clone(cached)),
                _ => {
                    let fresh: Arc<str> = Arc::from(value);
                    recent[slot] = Some(Arc::clone(&fresh));
                    StringValue::from(fresh)
                }
            }
        })
        .unwrap_or_else(|_| shared(value))
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
        assert!(ids(" , ,").is_empty());
    }

    #[test]
    fn long_chunk_lists_keep_every_id_in_order() {
        let expected: Vec<String> = (0..100).map(|i| format!("doc-{i}#0")).collect();
        assert_eq!(ids(&expected.join(",")), expected);
        assert_eq!(ids(&expected[..32].join(", ")), expected[..32]);
        assert_eq!(ids(&expected[..33].join(",,")), expected[..33]);
    }

    #[test]
    fn a_callsite_is_classified_by_field_index() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "step",
                request.path = "/ask",
                otel.name = "chat gpt-4o",
                { GEN_AI_OPERATION_NAME } = "chat",
                { SESSION_ID } = "s-1",
            );
            let metadata = span.metadata().expect("the registry enables every span");
            let classified = callsite_fields(metadata);
            assert!(classified.relevant && classified.named);
            let kinds: Vec<FieldKind> = metadata
                .fields()
                .iter()
                .map(|field| classified.kind(&field))
                .collect();
            assert_eq!(
                kinds,
                [
                    FieldKind::Ignored,
                    FieldKind::OtelName,
                    FieldKind::Operation,
                    FieldKind::SessionId
                ]
            );

            // Only a name, or only unrelated fields: nothing for the layer to read.
            let named = tracing::info_span!("named", otel.name = "x", user = "u");
            let named = callsite_fields(named.metadata().expect("enabled"));
            assert!(!named.relevant && named.named);
        });
    }

    #[test]
    fn repeated_values_share_one_allocation() {
        let first = shared_repeated("kb-main");
        let again = shared_repeated("kb-main");
        assert_eq!(again.as_str(), "kb-main");
        assert_eq!(first.as_str().as_ptr(), again.as_str().as_ptr());
        // A different value in the same cache slot replaces it, and still reads back right.
        for value in ["kb-mbin", "v4", "", "gpt-4o", "kb-main"] {
            assert_eq!(shared_repeated(value).as_str(), value);
        }
        let long = "x".repeat(100);
        assert_eq!(shared_repeated(&long).as_str(), long);
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
