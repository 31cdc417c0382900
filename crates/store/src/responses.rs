//! Indexed response spans: what feedback judges.

use std::collections::HashMap;

use crate::codec::{decode_strings, encode_strings, text_key};
use crate::connection::Connection;
use crate::db::{insert_id, values, Row, Value};
use crate::error::Result;
use crate::records::{Response, SpanId, SpanRef, Template, TraceId};
use crate::Engine;

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

/// The columns of a `responses` row, in the order of the statements that insert it.
const RESPONSE_COLUMNS: usize = 21;

/// The most rows one PostgreSQL insert carries (its parameters stay far below the protocol's
/// 65,535).
const ROWS_PER_INSERT: usize = 500;

/// A response with its interned strings and encoded columns, ready to bind.
struct ResponseRow<'a> {
    response: &'a Response,
    span: SpanRef,
    parent: Option<SpanId>,
    template_hash: Option<i64>,
    template_id: Option<i64>,
    template_version: Option<i64>,
    model: Option<i64>,
    provider: Option<i64>,
    parameters: Option<i64>,
    data_source: Option<i64>,
    index_version: Option<i64>,
    duration_us: i64,
    chunk_ids: Option<Vec<u8>>,
    response_key: Option<i64>,
}

impl<'a> ResponseRow<'a> {
    fn new(
        conn: &mut Connection,
        response: &'a Response,
        span: SpanRef,
        parent: Option<SpanId>,
    ) -> Result<Self> {
        let db = &mut conn.db;
        let interner = &mut conn.interner;
        Ok(Self {
            response,
            span,
            parent,
            template_hash: interner.id(db, response.template.hash.as_deref())?,
            template_id: interner.id(db, response.template.id.as_deref())?,
            template_version: interner.id(db, response.template.version.as_deref())?,
            model: interner.id(db, response.model.as_deref())?,
            provider: interner.id(db, response.provider.as_deref())?,
            parameters: interner.id(db, response.parameters.as_deref())?,
            data_source: interner.id(db, response.data_source.as_deref())?,
            index_version: interner.id(db, response.index_version.as_deref())?,
            duration_us: (response
                .end_unix_nano
                .saturating_sub(response.start_unix_nano)
                / 1_000) as i64,
            chunk_ids: response.chunk_ids.as_deref().map(encode_strings),
            response_key: response.response_id.as_deref().map(text_key),
        })
    }

    /// The row's [`RESPONSE_COLUMNS`] values.
    fn values(&self, received_s: i64) -> [Value<'_>; RESPONSE_COLUMNS] {
        let response = self.response;
        [
            Value::from(&self.span.trace_id),
            Value::from(&self.span.span_id),
            Value::from(received_s),
            Value::from(response.start_unix_nano as i64),
            Value::from(self.duration_us),
            Value::from(response.response_id.as_deref()),
            Value::from(self.template_id),
            Value::from(self.template_version),
            Value::from(self.template_hash),
            Value::from(self.chunk_ids.as_deref()),
            Value::from(self.model),
            Value::from(self.provider),
            Value::from(self.parameters),
            Value::from(self.data_source),
            Value::from(self.index_version),
            Value::from(response.session_id.as_deref()),
            Value::from(response.user_id.as_deref()),
            Value::from(response.fingerprint.as_deref()),
            Value::from(self.response_key),
            Value::from(self.parent.as_ref()),
            Value::from(response.semantic_fingerprint.as_deref()),
        ]
    }
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
        let inserted =
            self.insert_responses(&[(response, span, parent)], received_s, store_content)?;
        Ok(inserted.first().copied().unwrap_or(false))
    }

    /// [`Connection::insert_response_under`] of every `(response, span, parent)` of
    /// `responses`, in order: whether each was new. On PostgreSQL the rows go in
    /// multi-row statements (a round trip per response would bound a request's ingest by the
    /// network), on SQLite one statement each.
    pub fn insert_responses(
        &mut self,
        responses: &[(&Response, SpanRef, Option<SpanId>)],
        received_s: i64,
        store_content: bool,
    ) -> Result<Vec<bool>> {
        let mut rows = Vec::with_capacity(responses.len());
        for &(response, span, parent) in responses {
            rows.push(ResponseRow::new(self, response, span, parent)?);
        }
        let ids = if self.db.engine() == Engine::Sqlite || rows.len() < 2 {
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(insert_id!(
                    self.db,
                    "INSERT INTO responses (trace_id, span_id, received_s, start_ns,
                        duration_us, response_id, template_id, template_version, template_hash,
                        chunk_ids, model, provider, parameters, data_source, index_version,
                        session_id, user_id, fingerprint, response_key, parent_span_id,
                        semantic_fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21)
                     ON CONFLICT DO NOTHING",
                    &row.values(received_s),
                )?);
            }
            ids
        } else {
            self.insert_response_rows(&rows, received_s)?
        };
        for (row, id) in rows.iter().zip(&ids) {
            let Some(id) = *id else { continue };
            let response = row.response;
            if let (Some(hash), Some(text)) = (row.template_hash, &response.template.text) {
                self.db.execute_apart(
                    "INSERT INTO templates (hash, text) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    values![hash, text],
                )?;
            }
            if store_content && !response.content.is_empty() {
                self.db.execute(
                    "INSERT INTO response_content (response, input, output, query)
                     VALUES (?1, ?2, ?3, ?4)",
                    values![
                        id,
                        response.content.input.as_deref(),
                        response.content.output.as_deref(),
                        response.content.query.as_deref()
                    ],
                )?;
            }
        }
        Ok(ids.iter().map(Option::is_some).collect())
    }

    /// Inserts `rows` on PostgreSQL in statements of up to [`ROWS_PER_INSERT`] rows; the new
    /// row's id for each (`None`: it was indexed before).
    fn insert_response_rows(
        &mut self,
        rows: &[ResponseRow<'_>],
        received_s: i64,
    ) -> Result<Vec<Option<i64>>> {
        let mut new_rows: HashMap<SpanRef, i64> = HashMap::new();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO responses (trace_id, span_id, received_s, start_ns, duration_us,
                    response_id, template_id, template_version, template_hash, chunk_ids, model,
                    provider, parameters, data_source, index_version, session_id, user_id,
                    fingerprint, response_key, parent_span_id, semantic_fingerprint) VALUES ",
            );
            let mut params: Vec<Value<'_>> = Vec::with_capacity(chunk.len() * RESPONSE_COLUMNS);
            for (i, row) in chunk.iter().enumerate() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                for column in 0..RESPONSE_COLUMNS {
                    if column > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("?{}", i * RESPONSE_COLUMNS + column + 1));
                }
                sql.push(')');
                params.extend(row.values(received_s));
            }
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING trace_id, span_id, id");
            let inserted = self.db.query(&sql, &params, |row| {
                Ok((span_ref(row.get(0)?, row.get(1)?), row.get::<i64>(2)?))
            })?;
            for (span, id) in inserted {
                if let Some(span) = span {
                    new_rows.insert(span, id);
                }
            }
        }
        // A span listed twice is new once: the first time.
        Ok(rows.iter().map(|row| new_rows.remove(&row.span)).collect())
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
        match self.responses_under(&[span])?.get(&span) {
            Some(&row) => self.response_by_row(row),
            None => Ok(None),
        }
    }

    /// [`Connection::response_under`] of every span of `spans` at once, as the row of the
    /// chosen response for each span that has one ([`Connection::response_by_row`] reads
    /// it): on PostgreSQL one statement for the list, on SQLite one per span. For an export
    /// request's responses, whose stored children earlier requests indexed.
    pub fn responses_under(&mut self, spans: &[SpanRef]) -> Result<HashMap<SpanRef, i64>> {
        // (span asked about, row, end in µs, span id of the row)
        let mut candidates: Vec<(SpanRef, i64, i64, Vec<u8>)> = Vec::new();
        if self.db.engine() == Engine::Sqlite || spans.len() < 2 {
            for span in spans {
                let rows = self.db.query(
                    "SELECT id, start_ns / 1000 + duration_us, span_id FROM responses
                     WHERE trace_id = ?1 AND parent_span_id = ?2",
                    values![&span.trace_id, &span.span_id],
                    |row| Ok((*span, row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
                candidates.extend(rows);
            }
        } else {
            let trace_ids: Vec<&[u8]> = spans.iter().map(|span| &span.trace_id[..]).collect();
            let span_ids: Vec<&[u8]> = spans.iter().map(|span| &span.span_id[..]).collect();
            candidates = self
                .db
                .query(
                    // One index lookup per span, planned as the single lookup is: `OFFSET 0` keeps
                    // the subquery from being flattened into a join, which a plan cached while the
                    // table was small runs as a scan of the whole table.
                    "SELECT s.trace_id, s.span_id, r.id, r.end_us, r.span_id
                 FROM unnest(?1::BYTEA[], ?2::BYTEA[]) AS s(trace_id, span_id)
                 CROSS JOIN LATERAL (
                     SELECT id, start_ns / 1000 + duration_us AS end_us, span_id FROM responses
                     WHERE trace_id = s.trace_id AND parent_span_id = s.span_id
                     OFFSET 0
                 ) AS r",
                    &[Value::Blobs(&trace_ids), Value::Blobs(&span_ids)],
                    |row| {
                        let under = span_ref(row.get(0)?, row.get(1)?);
                        Ok((under, row.get(2)?, row.get(3)?, row.get(4)?))
                    },
                )?
                .into_iter()
                .filter_map(|(under, id, end, span_id)| Some((under?, id, end, span_id)))
                .collect();
        }
        let mut chosen: HashMap<SpanRef, (i64, i64, Vec<u8>)> = HashMap::new();
        for (under, id, end, span_id) in candidates {
            match chosen.get(&under) {
                Some((_, best_end, best_span)) if (*best_end, best_span) >= (end, &span_id) => {}
                _ => {
                    chosen.insert(under, (id, end, span_id));
                }
            }
        }
        Ok(chosen
            .into_iter()
            .map(|(under, (id, _, _))| (under, id))
            .collect())
    }

    /// The indexed response in row `row` (from [`Connection::responses_under`]).
    pub fn response_by_row(&mut self, row: i64) -> Result<Option<Response>> {
        self.db.query_opt(
            concat!(response_columns!(), " WHERE r.id = ?1"),
            values![row],
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

    /// [`Connection::insert_alias`] of every `(alias, target)` of `aliases`, in order (the
    /// first alias of a span stays): on PostgreSQL one statement for the list.
    pub fn insert_aliases(&mut self, aliases: &[(SpanRef, SpanId)], received_s: i64) -> Result<()> {
        if self.db.engine() == Engine::Sqlite || aliases.len() < 2 {
            for (alias, target) in aliases {
                self.insert_alias(*alias, *target, received_s)?;
            }
            return Ok(());
        }
        let trace_ids: Vec<&[u8]> = aliases
            .iter()
            .map(|(alias, _)| &alias.trace_id[..])
            .collect();
        let span_ids: Vec<&[u8]> = aliases
            .iter()
            .map(|(alias, _)| &alias.span_id[..])
            .collect();
        let targets: Vec<&[u8]> = aliases.iter().map(|(_, target)| &target[..]).collect();
        // `WITH ORDINALITY` keeps the list's order, which decides among a span's aliases.
        self.db.execute(
            "INSERT INTO span_aliases (trace_id, span_id, target_span_id, received_s)
             SELECT a.trace_id, a.span_id, a.target, ?4
             FROM unnest(?1::BYTEA[], ?2::BYTEA[], ?3::BYTEA[]) WITH ORDINALITY
                 AS a(trace_id, span_id, target, n)
             ORDER BY a.n
             ON CONFLICT DO NOTHING",
            &[
                Value::Blobs(&trace_ids),
                Value::Blobs(&span_ids),
                Value::Blobs(&targets),
                Value::Int(received_s),
            ],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{both_engines, key};

    fn the_first_alias_of_a_span_stays(conn: &mut Connection) {
        let trace = key(1).trace_id;
        let alias = |n: u8| SpanRef::new(trace, [n; 8]).unwrap();
        conn.insert_alias(alias(2), [20; 8], 100).unwrap();
        // A list naming one span twice, and one stored before: the first of each stays.
        conn.insert_aliases(
            &[
                (alias(3), [30; 8]),
                (alias(2), [21; 8]),
                (alias(4), [40; 8]),
                (alias(3), [31; 8]),
            ],
            101,
        )
        .unwrap();
        let mut target = |n: u8| {
            conn.alias_target(alias(n))
                .unwrap()
                .map(|target| target.span_id)
        };
        assert_eq!(target(2), Some([20; 8]));
        assert_eq!(target(3), Some([30; 8]));
        assert_eq!(target(4), Some([40; 8]));
        assert_eq!(target(5), None);
        conn.insert_aliases(&[], 102).unwrap();
    }

    both_engines!(the_first_alias_of_a_span_stays);
}
