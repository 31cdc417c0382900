//! The `ClosedloopLayer`: enrichment of OpenTelemetry spans from `tracing` spans.

mod fields;
mod state;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use closedloop_semconv::attribute::{
    RetrievalStage, CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_QUERY_FINGERPRINT,
    CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT, CLOSEDLOOP_QUERY_TEXT, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
    CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, CLOSEDLOOP_TURN_INDEX,
    GEN_AI_CONVERSATION_ID, GEN_AI_DATA_SOURCE_ID, SESSION_ID, USER_ID,
};
use closedloop_semconv::span as span_name;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::content::{ContentKind, ContentPolicy, PolicyBuilder};
use fields::{FieldValues, Operation};
pub(crate) use state::TemplateUse;
use state::{ChunkRecord, ContextSlot, Role, SpanState};

/// The order of the two layers has not been observed yet.
const ORDER_UNKNOWN: u8 = 0;
/// The OpenTelemetry layer sees each span before this layer (`.with(otel).with(closedloop)`).
const ORDER_OTEL_FIRST: u8 = 1;
/// This layer sees each span before the OpenTelemetry layer (`.with(closedloop).with(otel)`).
const ORDER_CLOSEDLOOP_FIRST: u8 = 2;

/// A [`tracing_subscriber::Layer`] that turns `tracing` spans into traceable LLM answers.
///
/// It composes with [`tracing_opentelemetry::OpenTelemetryLayer`] and writes, as OpenTelemetry
/// span attributes:
///
/// - onto generation spans, the chunk IDs actually placed in the prompt
///   (`closedloop.context.chunk_ids`), carried over from the retrieval, rerank and filter spans
///   of the same request, with the index version and data source. "The same request" means a
///   common ancestor span: a retrieval span that is an ancestor of the generation span, or
///   one under the same request span. Two root spans are two traces and are not connected;
///   see the [guide](crate::guide) for the merge rules;
/// - onto generation spans, the session, user, turn, conversation and query fingerprint of the
///   nearest enclosing span that has them (with the query's text when it was captured), and
///   the prompt template rendered for them;
/// - semantic-convention span names (`chat gpt-4o`, `retrieval my-index`) for plain spans that
///   set `gen_ai.*` fields but no `otel.name`.
///
/// # Layer order
///
/// Both orders work and export the same attributes:
///
/// - `.with(otel_layer).with(closedloop_layer)`: the OpenTelemetry span exists when this layer
///   sees a new span, so attributes the layer derives at creation are written at creation.
/// - `.with(closedloop_layer).with(otel_layer)`: this layer runs first, so it keeps the
///   attributes derived at creation until the span is first entered (or closed, if never
///   entered) and writes them then.
///
/// In both orders, data that arrives later (a recorded field, a helper call such as
/// [`RetrievalSpan::record_chunks`](crate::RetrievalSpan::record_chunks)) is written at once.
/// Writing starts the OpenTelemetry span, so
/// [`OpenTelemetrySpanExt::set_parent`](tracing_opentelemetry::OpenTelemetrySpanExt::set_parent)
/// on a span that already received closedloop attributes returns `AlreadyStarted`. Set remote
/// parents on the request span right after creating it, as usual: request spans only receive
/// attributes when [`record_query`](crate::record_query) is called on them.
///
/// The layer writes through tracing-opentelemetry's public API
/// ([`get_otel_context`](tracing_opentelemetry::get_otel_context)), because the OpenTelemetry
/// layer's per-span data is private. Attributes are therefore added after the span started:
/// a sampler does not see them.
///
/// Without an OpenTelemetry layer, or for spans filtered away from it, the layer does nothing
/// visible.
pub struct ClosedloopLayer {
    policy: ContentPolicy,
    shared: Arc<Shared>,
    dispatch: OnceLock<WeakDispatch>,
    access: Option<SpanAccess>,
}

impl fmt::Debug for ClosedloopLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClosedloopLayer")
            .field("policy", &self.policy)
            .field(
                "order",
                &match self.shared.order.load(Ordering::Relaxed) {
                    ORDER_OTEL_FIRST => "opentelemetry first",
                    ORDER_CLOSEDLOOP_FIRST => "closedloop first",
                    _ => "not observed yet",
                },
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Shared {
    order: AtomicU8,
    /// Spans whose state holds attributes not yet written; zero lets enter and close return early.
    pending_spans: AtomicUsize,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            order: AtomicU8::new(ORDER_UNKNOWN),
            pending_spans: AtomicUsize::new(0),
        }
    }
}

/// Monomorphised entry points for code that holds a [`Dispatch`] but not the subscriber type.
#[derive(Clone, Copy)]
struct SpanAccess {
    update: fn(&ClosedloopLayer, &Dispatch, &Id, Update),
    find_generation: fn(&Dispatch, &Id) -> Option<Id>,
}

/// A change to a span's state made by the helpers outside the layer callbacks.
#[derive(Debug)]
pub(crate) enum Update {
    /// A template was rendered in the span.
    Template(Arc<TemplateUse>),
    /// A retrieval helper returned chunks, with typed IDs and scores.
    Chunks {
        ids: Arc<[StringValue]>,
        scores: Option<Arc<[f64]>>,
    },
    /// The user's query: its fingerprint, and its text when capture is on.
    Query {
        fingerprint: StringValue,
        text: Option<KeyValue>,
    },
    /// The query's semantic fingerprint (query-embedding capture on).
    SemanticFingerprint(StringValue),
    /// Attributes to write as they are (captured content).
    Attributes(Vec<KeyValue>),
}

/// Builds a [`ClosedloopLayer`].
///
/// Reads `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` once, when the builder is created;
/// settings made on the builder take precedence over it.
#[derive(Debug)]
pub struct ClosedloopLayerBuilder {
    policy: PolicyBuilder,
}

impl ClosedloopLayerBuilder {
    /// Exports content of `kind` (off by default).
    pub fn with_capture(mut self, kind: ContentKind) -> Self {
        self.policy.capture(kind, true);
        self
    }

    /// Never exports content of `kind`, whatever the environment says.
    pub fn without_capture(mut self, kind: ContentKind) -> Self {
        self.policy.capture(kind, false);
        self
    }

    /// Passes every captured text through `redactor` before it is exported.
    pub fn with_redactor<F>(mut self, redactor: F) -> Self
    where
        F: Fn(ContentKind, &str) -> Cow<'_, str> + Send + Sync + 'static,
    {
        self.policy.redactor(Box::new(redactor));
        self
    }

    /// Exports user IDs as `sha256:` and 64 hex digits of an HMAC-SHA256 keyed with `salt`
    /// (plain SHA-256 when `salt` is empty).
    ///
    /// Applies to IDs given to [`request`](crate::request) and to IDs the layer copies
    /// onto generation spans. A raw `user.id` field on a plain span is still exported as it is
    /// by the OpenTelemetry layer on that span.
    pub fn with_hashed_user_ids(mut self, salt: impl Into<Vec<u8>>) -> Self {
        self.policy.hash_user_ids(Some(salt.into()));
        self
    }

    /// Builds the layer.
    pub fn build(self) -> ClosedloopLayer {
        ClosedloopLayer {
            policy: self.policy.build(),
            shared: Arc::default(),
            dispatch: OnceLock::new(),
            access: None,
        }
    }
}

impl Default for ClosedloopLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClosedloopLayer {
    /// A layer with the default policy: no content capture unless the environment asks for it.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, with the content-capture environment variable read now.
    pub fn builder() -> ClosedloopLayerBuilder {
        ClosedloopLayerBuilder {
            policy: PolicyBuilder::from_env(),
        }
    }

    /// The content policy, to share with a [`FeedbackRecorder`](crate::FeedbackRecorder).
    pub fn content_policy(&self) -> ContentPolicy {
        self.policy.clone()
    }

    /// The layer installed in `dispatch`, if any.
    pub(crate) fn find(dispatch: &Dispatch) -> Option<&ClosedloopLayer> {
        dispatch.downcast_ref::<ClosedloopLayer>()
    }

    /// Applies a helper's update to the span `id` of `dispatch`.
    pub(crate) fn update(&self, dispatch: &Dispatch, id: &Id, update: Update) {
        if let Some(access) = self.access {
            (access.update)(self, dispatch, id, update);
        }
    }

    /// The nearest generation span at or above `id`.
    pub(crate) fn find_generation(&self, dispatch: &Dispatch, id: &Id) -> Option<Id> {
        self.access
            .and_then(|access| (access.find_generation)(dispatch, id))
    }

    fn dispatch(&self) -> Option<Dispatch> {
        self.dispatch.get().and_then(WeakDispatch::upgrade)
    }

    /// Builds the state of a new span from its fields and its ancestors.
    fn init_span<R>(&self, span: &SpanRef<'_, R>, values: FieldValues) -> SpanState
    where
        R: for<'a> LookupSpan<'a>,
    {
        let role = role_of(values.operation, values.stage);
        let mut state = SpanState::new(role);
        let chunks = absorb(&mut state, values);

        if role == Role::Generation {
            self.inherit(span, &mut state);
        }
        if !state.has_otel_name {
            state.pending_name = semconv_name(&state);
        }
        if let Some(ids) = chunks {
            let record = chunk_record(&state, ids);
            propagate(span, &record);
            ContextSlot::merge_owned(&mut state.slot, record);
        }
        state
    }

    /// Copies onto a new generation span what it inherits from its ancestors.
    fn inherit<R>(&self, span: &SpanRef<'_, R>, state: &mut SpanState)
    where
        R: for<'a> LookupSpan<'a>,
    {
        let mut slot: Option<ContextSlot> = None;
        let mut template = None;
        let (mut session, mut user, mut conversation, mut turn, mut fingerprint) =
            (None, None, None, None, None);
        let mut query_text = None;
        let mut semantic = None;
        let mut ancestor = span.parent();
        while let Some(parent) = ancestor {
            {
                let mut extensions = parent.extensions_mut();
                if let Some(up) = extensions.get_mut::<SpanState>() {
                    if let Some(found) = up.slot.as_mut() {
                        if slot.is_none() {
                            slot = Some(found.clone());
                        }
                        // The chunks are in a prompt now; a later retrieval starts a new list.
                        found.consumed = true;
                    }
                    if template.is_none() {
                        template.clone_from(&up.template);
                    }
                    if let Some(up) = up.request.as_deref() {
                        session = session.or_else(|| up.session_id.clone());
                        user = user.or_else(|| up.user_id.clone());
                        conversation = conversation.or_else(|| up.conversation_id.clone());
                        turn = turn.or(up.turn_index);
                        if fingerprint.is_none() {
                            // The text goes with the fingerprint it belongs to.
                            fingerprint.clone_from(&up.fingerprint);
                            query_text.clone_from(&up.query_text);
                        }
                        if semantic.is_none() {
                            semantic.clone_from(&up.semantic_fingerprint);
                        }
                    }
                }
            }
            ancestor = parent.parent();
        }

        // What the generation span set itself wins over what it inherits.
        let (own_session, own_user, own_conversation, own_turn) = (
            state.has(|r| &r.session_id),
            state.has(|r| &r.user_id),
            state.has(|r| &r.conversation_id),
            state.has(|r| &r.turn_index),
        );
        let pending = &mut state.pending;
        if let (Some(slot), false) = (&slot, state.has_context_chunks) {
            pending.push(KeyValue::new(
                CLOSEDLOOP_CONTEXT_CHUNK_IDS,
                Value::Array(Array::String(slot.ids.to_vec())),
            ));
            if let (Some(version), None) = (&slot.index_version, &state.index_version) {
                pending.push(KeyValue::new(
                    CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
                    version.clone(),
                ));
            }
            if let (Some(source), None) = (&slot.data_source, &state.data_source) {
                pending.push(KeyValue::new(GEN_AI_DATA_SOURCE_ID, source.clone()));
            }
        }
        if let (Some(template), false) = (&template, state.has_template) {
            template.push_attributes(pending);
            state.has_template = true;
        }
        if let (Some(session), false) = (session, own_session) {
            pending.push(KeyValue::new(SESSION_ID, session));
        }
        if let (Some(user), false) = (user, own_user) {
            let user = if self.policy.hashes_user_ids() && !user.as_str().starts_with("sha256:") {
                fields::shared(&self.policy.user_id(user.as_str()))
            } else {
                user
            };
            pending.push(KeyValue::new(USER_ID, user));
        }
        if let (Some(conversation), false) = (conversation, own_conversation) {
            pending.push(KeyValue::new(GEN_AI_CONVERSATION_ID, conversation));
        }
        if let (Some(turn), false) = (turn, own_turn) {
            pending.push(KeyValue::new(CLOSEDLOOP_TURN_INDEX, turn));
        }
        if let (Some(fingerprint), false) = (fingerprint, state.has(|r| &r.fingerprint)) {
            state.pending.push(KeyValue::new(
                CLOSEDLOOP_QUERY_FINGERPRINT,
                fingerprint.clone(),
            ));
            if let Some(text) = &query_text {
                state
                    .pending
                    .push(KeyValue::new(CLOSEDLOOP_QUERY_TEXT, text.clone()));
            }
            let request = state.request_mut();
            request.fingerprint = Some(fingerprint);
            if query_text.is_some() {
                request.query_text = query_text;
            }
        }
        if let (Some(semantic), false) = (semantic, state.has(|r| &r.semantic_fingerprint)) {
            state.pending.push(KeyValue::new(
                CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT,
                semantic.clone(),
            ));
            state.request_mut().semantic_fingerprint = Some(semantic);
        }
    }

    /// Applies recorded field values to an existing span.
    fn record_span<R>(&self, span: &SpanRef<'_, R>, values: FieldValues)
    where
        R: for<'a> LookupSpan<'a>,
    {
        let record = {
            let mut extensions = span.extensions_mut();
            if extensions.get_mut::<SpanState>().is_none() {
                extensions.insert(SpanState::new(Role::Other));
            }
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            let new_role = state.role == Role::Other;
            if new_role {
                state.role = role_of(values.operation, values.stage);
            }
            let chunks = absorb(state, values);
            if new_role && state.role != Role::Other && !state.has_otel_name {
                state.pending_name = semconv_name(state);
            }
            let record = chunks.map(|ids| chunk_record(state, ids));
            if let Some(record) = &record {
                ContextSlot::merge(&mut state.slot, record);
            }
            self.note_pending(state);
            record
        };
        if let Some(record) = record {
            propagate(span, &record);
        }
    }

    /// Applies a helper's update to a span.
    fn apply<R>(&self, span: &SpanRef<'_, R>, update: Update)
    where
        R: for<'a> LookupSpan<'a>,
    {
        let record = {
            let mut extensions = span.extensions_mut();
            if extensions.get_mut::<SpanState>().is_none() {
                extensions.insert(SpanState::new(Role::Other));
            }
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            let mut record = None;
            match update {
                Update::Template(template) => {
                    if state.role != Role::Generation {
                        state.template = Some(template);
                    } else if !state.has_template {
                        template.push_attributes(&mut state.pending);
                        state.has_template = true;
                    }
                }
                Update::Chunks { ids, scores } => {
                    if state.role == Role::Other {
                        state.role = Role::Retrieval(RetrievalStage::Retrieve);
                    }
                    state.pending.push(KeyValue::new(
                        CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
                        Value::Array(Array::String(ids.to_vec())),
                    ));
                    if let Some(scores) = scores {
                        state.pending.push(KeyValue::new(
                            CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES,
                            Value::Array(Array::F64(scores.to_vec())),
                        ));
                    }
                    let chunks = chunk_record(state, ids);
                    ContextSlot::merge(&mut state.slot, &chunks);
                    record = Some(chunks);
                }
                // A span records one query: the first one recorded or inherited.
                Update::Query { fingerprint, text } if !state.has(|r| &r.fingerprint) => {
                    state.pending.push(KeyValue::new(
                        CLOSEDLOOP_QUERY_FINGERPRINT,
                        fingerprint.clone(),
                    ));
                    state.request_mut().fingerprint = Some(fingerprint);
                    if let Some(text) = text {
                        if let Value::String(value) = &text.value {
                            state.request_mut().query_text = Some(value.clone());
                        }
                        state.pending.push(text);
                    }
                }
                Update::Query { .. } => {}
                Update::SemanticFingerprint(value) if !state.has(|r| &r.semantic_fingerprint) => {
                    state.pending.push(KeyValue::new(
                        CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT,
                        value.clone(),
                    ));
                    state.request_mut().semantic_fingerprint = Some(value);
                }
                Update::SemanticFingerprint(_) => {}
                Update::Attributes(attributes) => state.pending.extend(attributes),
            }
            self.note_pending(state);
            record
        };
        if let Some(record) = record {
            propagate(span, &record);
        }
    }

    /// Counts a span that now holds pending data.
    fn note_pending(&self, state: &mut SpanState) {
        if state.has_pending() && !state.counted {
            state.counted = true;
            self.shared.pending_spans.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes pending attributes and name to the OpenTelemetry span, starting it if needed.
    ///
    /// Writing as soon as data arrives matters in the OpenTelemetry-first order, where the
    /// OpenTelemetry layer ends the span before this layer sees the close.
    fn flush<R>(&self, dispatch: &Dispatch, span: &SpanRef<'_, R>, when: FlushAt)
    where
        R: for<'a> LookupSpan<'a>,
    {
        let pending = {
            let mut extensions = span.extensions_mut();
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            self.take_pending(state, when)
        };
        if let Some(pending) = pending {
            self.write(dispatch, span, pending, when);
        }
    }

    /// Takes what a flush at `when` should write, if anything.
    fn take_pending(&self, state: &mut SpanState, when: FlushAt) -> Option<Pending> {
        if !state.has_pending() {
            return None;
        }
        if when == FlushAt::Creation
            && self.shared.order.load(Ordering::Relaxed) == ORDER_CLOSEDLOOP_FIRST
        {
            // The OpenTelemetry layer has not seen the span yet; wait for enter or close.
            return None;
        }
        if state.counted {
            state.counted = false;
            self.shared.pending_spans.fetch_sub(1, Ordering::Relaxed);
        }
        Some(Pending {
            attributes: std::mem::take(&mut state.pending),
            name: state.pending_name.take(),
            missed_at_creation: state.missed_at_creation,
        })
    }

    /// Writes taken attributes to the OpenTelemetry span, or puts them back if it does not
    /// exist (yet).
    fn write<R>(&self, dispatch: &Dispatch, span: &SpanRef<'_, R>, pending: Pending, when: FlushAt)
    where
        R: for<'a> LookupSpan<'a>,
    {
        // No extensions lock may be held here: the OpenTelemetry layer locks them again.
        match tracing_opentelemetry::get_otel_context(&span.id(), dispatch) {
            Some(cx) => {
                let otel_span = cx.span();
                otel_span.set_attributes(pending.attributes);
                if let Some(name) = pending.name {
                    otel_span.update_name(name);
                }
                let order = if when == FlushAt::Creation {
                    ORDER_OTEL_FIRST
                } else if pending.missed_at_creation {
                    ORDER_CLOSEDLOOP_FIRST
                } else {
                    ORDER_UNKNOWN
                };
                // Stored once: a store on every span would make threads fight over the line.
                if order != ORDER_UNKNOWN && self.shared.order.load(Ordering::Relaxed) != order {
                    self.shared.order.store(order, Ordering::Relaxed);
                }
            }
            None if when == FlushAt::Close => {}
            None => {
                // Not there yet (this layer runs first) or not there at all (no OpenTelemetry
                // layer, or the span is filtered away from it): keep the data for later.
                let mut extensions = span.extensions_mut();
                let Some(state) = extensions.get_mut::<SpanState>() else {
                    return;
                };
                if when == FlushAt::Creation {
                    state.missed_at_creation = true;
                }
                let mut attributes = pending.attributes;
                attributes.append(&mut state.pending);
                state.pending = attributes;
                if state.pending_name.is_none() {
                    state.pending_name = pending.name;
                }
                self.note_pending(state);
            }
        }
    }
}

/// Attributes and name taken from a span's state, to be written.
struct Pending {
    attributes: Vec<KeyValue>,
    name: Option<String>,
    missed_at_creation: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushAt {
    Creation,
    Enter,
    Update,
    Close,
}

/// The role a span's operation name and retrieval stage give it.
fn role_of(operation: Option<Operation>, stage: Option<RetrievalStage>) -> Role {
    if let Some(stage) = stage {
        return Role::Retrieval(stage);
    }
    match operation {
        Some(Operation::Generation(_)) => Role::Generation,
        Some(Operation::Retrieval) => Role::Retrieval(RetrievalStage::Retrieve),
        _ => Role::Other,
    }
}

/// Moves field values into the state; returns newly recorded chunk IDs.
fn absorb(state: &mut SpanState, values: FieldValues) -> Option<Arc<[StringValue]>> {
    use state::set;
    set(&mut state.operation, values.operation);
    set(&mut state.model, values.model);
    set(&mut state.data_source, values.data_source);
    set(&mut state.index_version, values.index_version);
    if let Some(request) = values.request {
        match state.request.as_deref_mut() {
            Some(current) => current.absorb(*request),
            None => state.request = Some(request),
        }
    }
    state.has_template |= values.has_template;
    state.has_context_chunks |= values.has_context_chunks;
    state.has_otel_name |= values.has_otel_name;
    values.chunk_ids
}

fn chunk_record(state: &SpanState, ids: Arc<[StringValue]>) -> ChunkRecord {
    let stage = match state.role {
        Role::Retrieval(stage) => stage,
        _ => RetrievalStage::Retrieve,
    };
    ChunkRecord {
        stage,
        ids,
        index_version: state.index_version.clone(),
        data_source: state.data_source.clone(),
    }
}

/// The semantic-convention name of a plain span, when its fields give one.
fn semconv_name(state: &SpanState) -> Option<String> {
    let source = state.data_source.as_ref().map_or("", StringValue::as_str);
    match state.role {
        Role::Generation => {
            let model = state.model.as_ref().map_or("", StringValue::as_str);
            let Some(Operation::Generation(operation)) = state.operation else {
                return None;
            };
            Some(span_name::generation_name(operation, model))
        }
        Role::Retrieval(RetrievalStage::Retrieve) => Some(span_name::retrieval_name(source)),
        Role::Retrieval(stage) => Some(span_name::rerank_name(stage.as_str(), source)),
        Role::Other => None,
    }
}

/// Folds a step's chunks into the slot of every ancestor, so a generation anywhere below them
/// finds the latest list through its nearest ancestor.
fn propagate<R>(span: &SpanRef<'_, R>, record: &ChunkRecord)
where
    R: for<'a> LookupSpan<'a>,
{
    let mut ancestor = span.parent();
    while let Some(parent) = ancestor {
        {
            let mut extensions = parent.extensions_mut();
            match extensions.get_mut::<SpanState>() {
                Some(state) => ContextSlot::merge(&mut state.slot, record),
                None => {
                    let mut state = SpanState::new(Role::Other);
                    ContextSlot::merge(&mut state.slot, record);
                    extensions.insert(state);
                }
            }
        }
        ancestor = parent.parent();
    }
}

fn update_via<S>(layer: &ClosedloopLayer, dispatch: &Dispatch, id: &Id, update: Update)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(subscriber) = dispatch.downcast_ref::<S>() else {
        return;
    };
    let Some(span) = subscriber.span(id) else {
        return;
    };
    layer.apply(&span, update);
    layer.flush(dispatch, &span, FlushAt::Update);
}

fn find_generation_via<S>(dispatch: &Dispatch, id: &Id) -> Option<Id>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let subscriber = dispatch.downcast_ref::<S>()?;
    let span = subscriber.span(id)?;
    span.scope()
        .find(|span| {
            span.extensions()
                .get::<SpanState>()
                .is_some_and(|state| state.role == Role::Generation)
        })
        .map(|span| span.id())
}

impl<S> Layer<S> for ClosedloopLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_layer(&mut self, _subscriber: &mut S) {
        self.access = Some(SpanAccess {
            update: update_via::<S>,
            find_generation: find_generation_via::<S>,
        });
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let callsite = fields::callsite_fields(attrs.metadata());
        if !callsite.relevant {
            return;
        }
        let mut values = FieldValues::of_callsite(callsite);
        attrs.record(&mut values);
        if !values.any {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut state = self.init_span(&span, values);
        let pending = self.take_pending(&mut state, FlushAt::Creation);
        self.note_pending(&mut state);
        span.extensions_mut().insert(state);
        if let Some(pending) = pending {
            match self.dispatch() {
                Some(dispatch) => self.write(&dispatch, &span, pending, FlushAt::Creation),
                None => {
                    let mut extensions = span.extensions_mut();
                    if let Some(state) = extensions.get_mut::<SpanState>() {
                        state.pending = pending.attributes;
                        state.pending_name = pending.name;
                        self.note_pending(state);
                    }
                }
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = FieldValues::default();
        values.record(&mut fields);
        if !fields.any {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        self.record_span(&span, fields);
        if let Some(dispatch) = self.dispatch() {
            self.flush(&dispatch, &span, FlushAt::Update);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.shared.pending_spans.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let (Some(span), Some(dispatch)) = (ctx.span(id), self.dispatch()) {
            self.flush(&dispatch, &span, FlushAt::Enter);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.shared.pending_spans.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        if let Some(dispatch) = self.dispatch() {
            self.flush(&dispatch, &span, FlushAt::Close);
        }
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            if state.counted {
                state.counted = false;
                self.shared.pending_spans.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
