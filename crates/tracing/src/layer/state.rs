//! The per-span state the layer keeps in span extensions.

use std::sync::Arc;

use closedloop_semconv::attribute::{
    RetrievalStage, CLOSEDLOOP_PROMPT_TEMPLATE_HASH, CLOSEDLOOP_PROMPT_TEMPLATE_ID,
    CLOSEDLOOP_PROMPT_TEMPLATE_TEXT, CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
    CLOSEDLOOP_PROMPT_VARIABLES, CLOSEDLOOP_PROMPT_VARIABLE_VALUES, GEN_AI_PROMPT_NAME,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};

/// What a span is, as far as the layer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Any other span: a request, a handler, a wrapper.
    Other,
    /// A model call whose answer a user sees.
    Generation,
    /// A retrieval, rerank or filter step.
    Retrieval(RetrievalStage),
}

/// The chunks a subtree of spans produced most recently: what a generation in that subtree
/// would put in its prompt.
#[derive(Debug, Clone)]
pub(super) struct ContextSlot {
    pub(super) ids: Arc<[StringValue]>,
    pub(super) index_version: Option<StringValue>,
    pub(super) data_source: Option<StringValue>,
    pub(super) last_stage: RetrievalStage,
    /// A generation has read this list; the next retrieval starts a new one.
    pub(super) consumed: bool,
}

/// One result of a retrieval, rerank or filter step.
#[derive(Debug, Clone)]
pub(super) struct ChunkRecord {
    pub(super) stage: RetrievalStage,
    pub(super) ids: Arc<[StringValue]>,
    pub(super) index_version: Option<StringValue>,
    pub(super) data_source: Option<StringValue>,
}

impl ContextSlot {
    /// Like [`merge`](Self::merge), without copying the record into an empty slot.
    pub(super) fn merge_owned(slot: &mut Option<ContextSlot>, record: ChunkRecord) {
        if slot.is_some() {
            Self::merge(slot, &record);
            return;
        }
        *slot = Some(ContextSlot::new(record));
    }

    fn new(record: ChunkRecord) -> ContextSlot {
        ContextSlot {
            ids: record.ids,
            index_version: record.index_version,
            data_source: record.data_source,
            last_stage: record.stage,
            consumed: false,
        }
    }

    /// Folds a step's result into the slot: a rerank or filter replaces the list, consecutive
    /// retrievals append to it (without duplicates), and a retrieval after a rerank, a filter or
    /// a generation starts over.
    pub(super) fn merge(slot: &mut Option<ContextSlot>, record: &ChunkRecord) {
        if let Some(current) = slot.as_mut() {
            let appends = record.stage == RetrievalStage::Retrieve
                && current.last_stage == RetrievalStage::Retrieve
                && !current.consumed;
            if appends {
                let mut ids: Vec<StringValue> = current.ids.to_vec();
                for id in record.ids.iter() {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                current.ids = ids.into();
                if record.index_version.is_some() {
                    current.index_version.clone_from(&record.index_version);
                }
                if record.data_source.is_some() {
                    current.data_source.clone_from(&record.data_source);
                }
                return;
            }
            if record.stage != RetrievalStage::Retrieve && !current.consumed {
                current.ids = record.ids.clone();
                current.last_stage = record.stage;
                if record.index_version.is_some() {
                    current.index_version.clone_from(&record.index_version);
                }
                if record.data_source.is_some() {
                    current.data_source.clone_from(&record.data_source);
                }
                return;
            }
        }
        *slot = Some(ContextSlot::new(record.clone()));
    }
}

/// A template rendered in a span, ready to be written to a generation span.
#[derive(Debug)]
pub(crate) struct TemplateUse {
    pub(crate) id: StringValue,
    pub(crate) version: StringValue,
    pub(crate) hash: StringValue,
    pub(crate) variables: Vec<StringValue>,
    /// Captured and redacted variable values, as a JSON object; `None` when capture is off.
    pub(crate) values_json: Option<String>,
    /// Captured and redacted template text; `None` when capture is off.
    pub(crate) text: Option<String>,
}

impl TemplateUse {
    pub(super) fn push_attributes(&self, out: &mut Vec<KeyValue>) {
        out.push(KeyValue::new(
            CLOSEDLOOP_PROMPT_TEMPLATE_ID,
            self.id.clone(),
        ));
        out.push(KeyValue::new(GEN_AI_PROMPT_NAME, self.id.clone()));
        out.push(KeyValue::new(
            CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
            self.version.clone(),
        ));
        out.push(KeyValue::new(
            CLOSEDLOOP_PROMPT_TEMPLATE_HASH,
            self.hash.clone(),
        ));
        out.push(KeyValue::new(
            CLOSEDLOOP_PROMPT_VARIABLES,
            Value::Array(Array::String(self.variables.clone())),
        ));
        if let Some(values) = &self.values_json {
            out.push(KeyValue::new(
                CLOSEDLOOP_PROMPT_VARIABLE_VALUES,
                values.clone(),
            ));
        }
        if let Some(text) = &self.text {
            out.push(KeyValue::new(CLOSEDLOOP_PROMPT_TEMPLATE_TEXT, text.clone()));
        }
    }
}

/// What a span says about its request, for the generation spans under it: set on request
/// spans and copied onto generations. Boxed wherever it is kept, because most spans carry none.
#[derive(Debug, Default, Clone)]
pub(super) struct RequestContext {
    pub(super) session_id: Option<StringValue>,
    pub(super) user_id: Option<StringValue>,
    pub(super) conversation_id: Option<StringValue>,
    pub(super) turn_index: Option<i64>,
    pub(super) fingerprint: Option<StringValue>,
    /// The query's semantic fingerprint, when query-embedding capture is on.
    pub(super) semantic_fingerprint: Option<StringValue>,
    /// The query's text, when it was captured with the fingerprint (content capture on).
    pub(super) query_text: Option<StringValue>,
}

/// Replaces `slot` with `value` when there is one.
pub(super) fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

impl RequestContext {
    /// Takes every value `other` has.
    pub(super) fn absorb(&mut self, other: RequestContext) {
        set(&mut self.session_id, other.session_id);
        set(&mut self.user_id, other.user_id);
        set(&mut self.conversation_id, other.conversation_id);
        set(&mut self.turn_index, other.turn_index);
        set(&mut self.fingerprint, other.fingerprint);
        set(&mut self.semantic_fingerprint, other.semantic_fingerprint);
        set(&mut self.query_text, other.query_text);
    }
}

/// The layer's private per-span state, stored in the span's extensions.
///
/// It is moved and initialised for every span the layer reads, so what most spans lack is
/// boxed ([`RequestContext`]) and the rest kept small.
#[derive(Debug)]
pub(super) struct SpanState {
    pub(super) role: Role,
    pub(super) operation: Option<super::fields::Operation>,
    pub(super) model: Option<StringValue>,
    pub(super) data_source: Option<StringValue>,
    pub(super) index_version: Option<StringValue>,
    pub(super) request: Option<Box<RequestContext>>,
    pub(super) has_template: bool,
    pub(super) has_context_chunks: bool,
    pub(super) has_otel_name: bool,
    /// The latest chunks produced in this span's subtree (its own, for a retrieval span).
    pub(super) slot: Option<ContextSlot>,
    /// A template rendered in this (non-generation) span, for generation spans below it.
    pub(super) template: Option<Arc<TemplateUse>>,
    /// Attributes not yet written to the OpenTelemetry span.
    pub(super) pending: Vec<KeyValue>,
    /// A span name not yet written to the OpenTelemetry span.
    pub(super) pending_name: Option<String>,
    /// Whether the span was counted in the layer's count of spans with pending data.
    pub(super) counted: bool,
    /// The first write, at creation, found no OpenTelemetry span yet.
    pub(super) missed_at_creation: bool,
}

impl SpanState {
    pub(super) fn new(role: Role) -> Self {
        SpanState {
            role,
            operation: None,
            model: None,
            data_source: None,
            index_version: None,
            request: None,
            has_template: false,
            has_context_chunks: false,
            has_otel_name: false,
            slot: None,
            template: None,
            pending: Vec::new(),
            pending_name: None,
            counted: false,
            missed_at_creation: false,
        }
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.pending_name.is_some()
    }

    /// The span's request context, created empty if it has none.
    pub(super) fn request_mut(&mut self) -> &mut RequestContext {
        self.request.get_or_insert_with(Box::default)
    }

    /// Whether the span has a value of the request context `field` reads.
    pub(super) fn has<T>(&self, field: impl Fn(&RequestContext) -> &Option<T>) -> bool {
        self.request
            .as_deref()
            .is_some_and(|request| field(request).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stage: RetrievalStage, ids: &[&'static str]) -> ChunkRecord {
        ChunkRecord {
            stage,
            ids: ids.iter().map(|id| StringValue::from(*id)).collect(),
            index_version: None,
            data_source: None,
        }
    }

    fn ids(slot: &Option<ContextSlot>) -> Vec<&str> {
        slot.as_ref()
            .unwrap()
            .ids
            .iter()
            .map(StringValue::as_str)
            .collect()
    }

    #[test]
    fn retrievals_append_and_rerank_replaces() {
        let mut slot = None;
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Retrieve, &["a", "b"]));
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Retrieve, &["b", "c"]));
        assert_eq!(ids(&slot), ["a", "b", "c"]);
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Rerank, &["c", "a"]));
        assert_eq!(ids(&slot), ["c", "a"]);
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Filter, &["c"]));
        assert_eq!(ids(&slot), ["c"]);
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Retrieve, &["d"]));
        assert_eq!(ids(&slot), ["d"]);
    }

    #[test]
    fn a_consumed_list_is_not_extended() {
        let mut slot = None;
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Retrieve, &["a"]));
        slot.as_mut().unwrap().consumed = true;
        ContextSlot::merge(&mut slot, &record(RetrievalStage::Retrieve, &["b"]));
        assert_eq!(ids(&slot), ["b"]);
    }
}
