//! A short guide to each feature. This module contains documentation only.
//!
//! # Installing the layer
//!
//! Add [`ClosedloopLayer`](crate::ClosedloopLayer) next to the OpenTelemetry layer, in either
//! order; see the type's docs for what each order implies. The layer only writes to spans the
//! OpenTelemetry layer also sees; per-layer filters that hide a span from it hide it from
//! closedloop's enrichment too.
//!
//! # Generation, retrieval and rerank spans
//!
//! The helpers ([`generation`](crate::generation), [`retrieval`](crate::retrieval),
//! [`rerank`](crate::rerank), [`filter`](crate::filter), [`embedding`](crate::embedding)) create
//! spans with semantic-convention fields and names (`chat gpt-4o`, `retrieval kb`,
//! `rerank kb`, `embeddings text-embedding-3-small`). Plain spans work as well, as long as
//! they use the semantic-convention field names (use the constants of
//! `closedloop_semconv::attribute` as `{ CONST } = value`):
//!
//! ```
//! use closedloop_semconv::attribute::{
//!     CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_STAGE, GEN_AI_DATA_SOURCE_ID,
//!     GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL,
//! };
//!
//! let retrieval = tracing::info_span!(
//!     "search",
//!     { GEN_AI_OPERATION_NAME } = "retrieval",
//!     { GEN_AI_DATA_SOURCE_ID } = "kb",
//!     { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = "kb-1#0,kb-7#3",
//! );
//! let rerank = tracing::info_span!(
//!     "rerank",
//!     { CLOSEDLOOP_RETRIEVAL_STAGE } = "rerank",
//!     { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = tracing::field::Empty,
//! );
//! rerank.record(CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, r#"["kb-7#3"]"#);
//! let chat = tracing::info_span!(
//!     "llm",
//!     { GEN_AI_OPERATION_NAME } = "chat",
//!     { GEN_AI_REQUEST_MODEL } = "gpt-4o",
//! );
//! # drop((retrieval, rerank, chat));
//! ```
//!
//! A span is a generation span when `gen_ai.operation.name` is `chat`, `generate_content` or
//! `text_completion`; a retrieval step when `gen_ai.operation.name` is `retrieval` or
//! `closedloop.retrieval.stage` is set (`retrieve`, `rerank` or `filter`). Plain spans without
//! an `otel.name` field are renamed after the conventions.
//!
//! `closedloop.retrieval.chunk_ids` is accepted as a JSON array of strings (`["a","b"]`), as
//! the `Debug` output of a list of strings (`?ids`, the same text), or as a comma-separated
//! list (`a, b`; IDs containing commas need the JSON form). `closedloop.retrieval.chunk_scores`
//! is a JSON array of numbers or a comma-separated list. On a plain span, the OpenTelemetry
//! layer exports these fields as the strings they are; the helpers'
//! [`RetrievalSpan::record_chunks`](crate::RetrievalSpan::record_chunks) writes typed arrays.
//!
//! # Chunk IDs on the generation span
//!
//! Every retrieval, rerank or filter result is folded into a "latest context" kept on each of
//! its ancestor spans: consecutive retrievals append (without duplicates), a rerank or a filter
//! replaces the list, and a retrieval after a rerank or after a generation starts a new list.
//! A generation span created later takes the list of its nearest ancestor that has one (or of
//! the retrieval span it is nested in) and records it as `closedloop.context.chunk_ids`,
//! together with the index version and data source. So two retrievals and a rerank under one
//! request span give the generation the rerank's order, and parallel branches of a request
//! each see their own retrievals. A generation span that sets `closedloop.context.chunk_ids`
//! itself keeps its own value.
//!
//! # Session, user, turn and query
//!
//! Set `session.id`, `user.id`, `closedloop.turn.index`, `gen_ai.conversation.id` and
//! `closedloop.query.fingerprint` on the request span, with [`request`](crate::request) or as
//! fields, before the generation spans are created; each generation span gets the nearest
//! ancestor's values (its own values win). With
//! [`with_hashed_user_ids`](crate::ClosedloopLayerBuilder::with_hashed_user_ids), user IDs are
//! exported as `sha256:<hex>`; a raw `user.id` field on a plain span is exported raw on that span.
//!
//! # Prompt templates
//!
//! [`PromptTemplate::render`](crate::PromptTemplate::render) records the template on the
//! current generation span, or, rendered in another span, on the generation spans below it.
//!
//! # Content capture
//!
//! Content is never exported by default. Turn it on per [`ContentKind`](crate::ContentKind)
//! with [`with_capture`](crate::ClosedloopLayerBuilder::with_capture), or for query, prompt and
//! output with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (read once, when the
//! layer is built). Everything captured passes through the
//! [`with_redactor`](crate::ClosedloopLayerBuilder::with_redactor) hook first. Content written
//! as plain span fields bypasses all of this: the OpenTelemetry layer exports every field.
//!
//! # Query fingerprints
//!
//! [`fingerprint`](crate::fingerprint()) turns a query into `mh64v3:<260 hex><marks>`, a MinHash
//! over normalised words (common synonyms and phrasal verbs mapped to one canonical word) and
//! their character trigrams, with the sizes of both sets so containment can be estimated, then
//! one byte for each side of a pair of opposite actions ("enable" / "disable") the query uses,
//! so that [`Fingerprint::contrasts`](crate::Fingerprint::contrasts) can tell "turn on 2FA"
//! from "turn off 2FA". The receiver parses it back with
//! [`str::parse`] and compares consecutive queries with
//! [`Fingerprint::similarity`](crate::Fingerprint::similarity); at
//! [`SUGGESTED_REPHRASE_THRESHOLD`](crate::SUGGESTED_REPHRASE_THRESHOLD) rephrasings are told
//! from new and follow-up questions on the crate's labelled pairs.
//!
//! # Semantic query fingerprints
//!
//! When the application embeds the query (for retrieval, usually), it can hand the receiver the
//! query's meaning without the vector: [`SemanticHasher`](crate::SemanticHasher) turns an
//! embedding into `sh512:<model>:<128 hex>`, a 512-bit SimHash seeded by the model's name, and
//! the receiver estimates two queries' cosine from the bits they differ in. The hash still
//! tells roughly what a query is about, so it is exported only with
//! [`ContentKind::QueryEmbedding`](crate::ContentKind::QueryEmbedding) capture on. Build the
//! hasher once per model:
//!
//! ```
//! use closedloop_tracing::{request, ClosedloopLayer, ContentKind, SemanticHasher};
//!
//! let layer = ClosedloopLayer::builder()
//!     .with_capture(ContentKind::QueryEmbedding)
//!     .build();
//! let hasher = SemanticHasher::new("text-embedding-3-small", 4)?;
//! let embedding = [0.12_f32, -0.5, 0.33, 0.8]; // from the embedding call retrieval made
//! let fingerprint = hasher.fingerprint(&embedding)?;
//! assert!(fingerprint.to_string().starts_with("sh512:text-embedding-3-small:"));
//! let span = request("POST /chat")
//!     .with_query("How many vacation days do I get?")
//!     .with_query_semantic_fingerprint(fingerprint)
//!     .start();
//! # drop((layer, span));
//! # Ok::<(), closedloop_tracing::SemanticFingerprintError>(())
//! ```
//!
//! [`record_query_semantic_fingerprint`](crate::record_query_semantic_fingerprint) sets it on a
//! span already started. Generation spans below inherit it.
//!
//! # Feedback
//!
//! Hand the client [`ResponseRef`](crate::ResponseRef) (from
//! [`GenerationSpan::response_ref`](crate::GenerationSpan::response_ref) or
//! [`ResponseRef::current`](crate::ResponseRef::current)), optionally with a feedback token
//! ([`ResponseRef::with_feedback_token`](crate::ResponseRef::with_feedback_token)). A browser
//! sends the token back with its feedback; the receiver calls
//! [`verify_feedback_token`](crate::verify_feedback_token), which only accepts tokens signed
//! with the shared secret for that exact span and not yet expired. The application (or the
//! receiver) then calls [`record_feedback`](crate::record_feedback), which emits a span named
//! `feedback <signal>` in the response's trace, linked once to the response span.
