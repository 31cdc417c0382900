//! Indexed response spans: what feedback judges.

use crate::codec::{decode_strings, encode_strings, text_key};
use crate::connection::Connection;
use crate::db::{insert_id, values, Row};
use crate::error::Result;
use crate::records::{Response, SpanId, SpanRef, Template, TraceId};

/// The columns [`response_from_row`] reads, with the interned strings joined in.
macro_rules! response_columns {
    () => {
        "SELECT r.trace_id, r.span_id, r.start_ns, r.duration_us,
            r.response_id, ti.value, tv.value, th.value, r.chunk_ids, m.value, p.value, pa.value,
            ds.value, iv.value, r.session_id, r.user_id, r.fingerprint, r.semantic_fingerprint
        FROM responses r
        LEFT JOIN strings ti ON ti.id = r.template_id
        LEFT JOIN strings tv ON tv.id = r.template_version
        LEFT JOIN strings th ON th.id = r.template_hash
        LEFT JOIN strings m ON m.id = r.model
        LEFT JOIN strings p ON p.id = r.provider
        LEFT JOIN strings pa ON pa.id = r.parameters
        LEFT JOIN strings ds ON ds.id = r.data_source
        LEFT JOIN strings iv ON iv.id = r.index_version"
    };
}

/// The ids of a span read from two BLOB columns; `None` when either is NULL or malformed.
pub(crate) fn span_ref(trace_id: Option<Vec<u8>>, span_id: Option<Vec<u8>>) -> Option<SpanRef> {
    SpanRef::from_bytes(&trace_id?, &span_id?)
}

fn response_from_row(row: &Row<'_>) -> Result<Response> {
    let start: i64 = row.get(2)?;
    let duration_us: i64 = row.get(3)?;
    Ok(Response {
        span: span_ref(row.get(0)?, row.get(1)?),
        start_unix_nano: start as u64,
        end_unix_nano: (start as u64).saturating_add((duration_us as u64).saturating_mul(1_000)),
        response_id: row.get(4)?,
        template: Template {
            id: row.get(5)?,
            version: row.get(6)?,
            hash: row.get(7)?,
            text: None,
        },
        chunk_ids: row
            .get::<Option<Vec<u8>>>(8)?
            .map(|bytes| decode_strings(&bytes)),
        model: row.get(9)?,
        provider: row.get(10)?,
        parameters: row.get(11)?,
        data_source: row.get(12)?,
        index_version: row.get(13)?,
        session_id: row.get(14)?,
        user_id: row.get(15)?,
        fingerprint: row.get(16)?,
        semantic_fingerprint: row.get(17)?,
        content: Default::default(),
    })
}

impl Connection {
    /// Indexes one response span under `span`; `false` when it was indexed before (an OTLP
    /// retry). Its content is stored too when `store_content` and the span carried any.
    pub fn insert_response(
        &mut self,
        response: &Response,
        span: SpanRef,
        received_s: i64,
        store_content: bool,
    ) -> Result<bool> {
        self.insert_response_under(response, span, None, received_s, store_content)
    }

    /// [`Connection::insert_response`] of a span whose parent span is `parent` (`None`: a
    /// root span, or not known), which [`Connection::response_under`] finds it by.
    pub fn insert_response_under(
        &mut self,
        response: &Response,
        span: SpanRef,
        parent: Option<SpanId>,
        received_s: i64,
        store_content: bool,
    ) -> Result<bool> {
        let db = &mut self.db;
        let interner = &mut self.interner;
        let template_hash = interner.id(db, response.template.hash.as_deref())?;
        let template_id = interner.id(db, response.template.id.as_deref())?;
        let template_version = interner.id(db, response.template.version.as_deref())?;
        let model = interner.id(db, response.model.as_deref())?;
        let provider = interner.id(db, response.provider.as_deref())?;
        let parameters = interner.id(db, response.parameters.as_deref())?;
        let data_source = interner.id(db, response.data_source.as_deref())?;
        let index_version = interner.id(db, response.index_version.as_deref())?;
        let duration_us = response
            .end_unix_nano
            .saturating_sub(response.start_unix_nano)
            / 1_000;
        let chunk_ids = response.chunk_ids.as_deref().map(encode_strings);
        let row = insert_id!(
            db,
            "INSERT INTO responses (trace_id, span_id, received_s, start_ns,
                duration_us, response_id, template_id, template_version, template_hash,
                chunk_ids, model, provider, parameters, data_source, index_version, session_id,
                user_id, fingerprint, response_key, parent_span_id, semantic_fingerprint)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19, ?20, ?21)
             ON CONFLICT DO NOTHING",
            values![
                &span.trace_id,
                &span.span_id,
                received_s,
                response.start_unix_nano as i64,
                duration_us as i64,
                response.response_id.as_deref(),
                template_id,
                template_version,
                template_hash,
                chunk_ids.as_deref(),
                model,
                provider,
                parameters,
                data_source,
                index_version,
                response.session_id.as_deref(),
                response.user_id.as_deref(),
                response.fingerprint.as_deref(),
                response.response_id.as_deref().map(text_key),
                parent.as_ref(),
                response.semantic_fingerprint.as_deref(),
            ],
        )?;
        let Some(row) = row else {
            return Ok(false);
        };
        if let (Some(hash), Some(text)) = (template_hash, &response.template.text) {
            db.execute_apart(
                "INSERT INTO templates (hash, text) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                values![hash, text],
            )?;
        }
        if store_content && !response.content.is_empty() {
            db.execute(
                "INSERT INTO response_content (response, input, output, query)
                 VALUES (?1, ?2, ?3, ?4)",
                values![
                    row,
                    response.content.input.as_deref(),
                    response.content.output.as_deref(),
                    response.content.query.as_deref()
                ],
            )?;
        }
        Ok(true)
    }

    /// The indexed response span with these ids.
    pub fn response_by_span(&mut self, span: SpanRef) -> Result<Option<Response>> {
        self.db.query_opt(
            concat!(
                response_columns!(),
                " WHERE r.trace_id = ?1 AND r.span_id = ?2"
            ),
            values![&span.trace_id, &span.span_id],
            response_from_row,
        )
    }

    /// The latest indexed response span with this `gen_ai.response.id`.
    pub fn response_by_response_id(&mut self, response_id: &str) -> Result<Option<Response>> {
        self.db.query_opt(
            concat!(
                response_columns!(),
                " WHERE r.response_key = ?1 AND r.response_id = ?2 ORDER BY r.id DESC LIMIT 1"
            ),
            values![text_key(response_id), response_id],
            response_from_row,
        )
    }

    /// The stored response of trace `trace_id` that ended last (ties: the greatest span id),
    /// which feedback naming a span of the trace that is neither a response nor an alias
    /// resolves to.
    pub fn last_response_of_trace(&mut self, trace_id: &TraceId) -> Result<Option<Response>> {
        self.db.query_opt(
            concat!(
                response_columns!(),
                " WHERE r.trace_id = ?1
                ORDER BY r.start_ns / 1000 + r.duration_us DESC, r.span_id DESC LIMIT 1"
            ),
            values![trace_id],
            response_from_row,
        )
    }

    /// The stored response whose parent span is `span` that ended last (ties: the greatest
    /// span id): a nested LLM span indexed before its enclosing one.
    ///
    /// Every indexed LLM span asks, and there is almost never one: the candidates are read
    /// without the row's details (no joins, no sort, found through the trace's rows of the
    /// span index), and only the chosen one is read in full.
    pub fn response_under(&mut self, span: SpanRef) -> Result<Option<Response>> {
        let candidates = self.db.query(
            "SELECT id, start_ns / 1000 + duration_us, span_id FROM responses
             WHERE trace_id = ?1 AND parent_span_id = ?2",
            values![&span.trace_id, &span.span_id],
            |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<i64>(1)?,
                    row.get::<Vec<u8>>(2)?,
                ))
            },
        )?;
        let Some((id, _, _)) = candidates
            .into_iter()
            .max_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)))
        else {
            return Ok(None);
        };
        self.db.query_opt(
            concat!(response_columns!(), " WHERE r.id = ?1"),
            values![id],
            response_from_row,
        )
    }

    /// Rewrites the details of the stored response `span` (its template, chunk ids, model,
    /// provider, parameters, data source, index version, session, user, fingerprint and
    /// response id) with those of `response`; its ids, times and parent stay. Content and
    /// template text `response` carries are stored when the response has none yet (content
    /// only when `store_content`). For nested LLM spans folded into one response.
    pub fn update_response_details(
        &mut self,
        span: SpanRef,
        response: &Response,
        store_content: bool,
    ) -> Result<()> {
        let db = &mut self.db;
        let interner = &mut self.interner;
        let template_hash = interner.id(db, response.template.hash.as_deref())?;
        let template_id = interner.id(db, response.template.id.as_deref())?;
        let template_version = interner.id(db, response.template.version.as_deref())?;
        let model = interner.id(db, response.model.as_deref())?;
        let provider = interner.id(db, response.provider.as_deref())?;
        let parameters = interner.id(db, response.parameters.as_deref())?;
        let data_source = interner.id(db, response.data_source.as_deref())?;
        let index_version = interner.id(db, response.index_version.as_deref())?;
        let chunk_ids = response.chunk_ids.as_deref().map(encode_strings);
        db.execute(
            "UPDATE responses SET response_id = ?3, template_id = ?4, template_version = ?5,
                template_hash = ?6, chunk_ids = ?7, model = ?8, provider = ?9, parameters = ?10,
                data_source = ?11, index_version = ?12, session_id = ?13, user_id = ?14,
                fingerprint = ?15, response_key = ?16, semantic_fingerprint = ?17
             WHERE trace_id = ?1 AND span_id = ?2",
            values![
                &span.trace_id,
                &span.span_id,
                response.response_id.as_deref(),
                template_id,
                template_version,
                template_hash,
                chunk_ids.as_deref(),
                model,
                provider,
                parameters,
                data_source,
                index_version,
                response.session_id.as_deref(),
                response.user_id.as_deref(),
                response.fingerprint.as_deref(),
                response.response_id.as_deref().map(text_key),
                response.semantic_fingerprint.as_deref(),
            ],
        )?;
        if let (Some(hash), Some(text)) = (template_hash, &response.template.text) {
            db.execute_apart(
                "INSERT INTO templates (hash, text) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                values![hash, text],
            )?;
        }
        if store_content && !response.content.is_empty() {
            db.execute(
                "INSERT INTO response_content (response, input, output, query)
                 SELECT id, ?3, ?4, ?5 FROM responses WHERE trace_id = ?1 AND span_id = ?2
                 ON CONFLICT DO NOTHING",
                values![
                    &span.trace_id,
                    &span.span_id,
                    response.content.input.as_deref(),
                    response.content.output.as_deref(),
                    response.content.query.as_deref()
                ],
            )?;
        }
        Ok(())
    }

    /// Makes `alias`, a span that is not a response, resolve to the response `target` of the
    /// same trace. The first alias of a span stays: writing it again (an OTLP retry, or a
    /// later request naming it) changes nothing.
    pub fn insert_alias(&mut self, alias: SpanRef, target: SpanId, received_s: i64) -> Result<()> {
        self.db.execute(
            "INSERT INTO span_aliases (trace_id, span_id, target_span_id, received_s)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            values![&alias.trace_id, &alias.span_id, &target, received_s],
        )?;
        Ok(())
    }

    /// The response span the alias `span` resolves to, if it is one.
    pub fn alias_target(&mut self, span: SpanRef) -> Result<Option<SpanRef>> {
        let target = self.db.query_value::<Vec<u8>>(
            "SELECT target_span_id FROM span_aliases WHERE trace_id = ?1 AND span_id = ?2",
            values![&span.trace_id, &span.span_id],
        )?;
        Ok(target.and_then(|target| SpanRef::from_bytes(&span.trace_id, &target)))
    }
}
