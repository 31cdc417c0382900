//! The living eval set: every failure record as an eval case.
//!
//! Each failure record gives one case: the query text when the application captured it (else
//! its fingerprint), the context chunk ids, the template id and version, the model, the output
//! when captured, the record's signals and category, the reviewer's label and expected answer
//! when there is one, and the trace and span it came from. Records whose queries are near
//! duplicates merge into one case with a count: records are taken oldest first (ties by
//! failure id) and each joins the first earlier case whose first record's query is at least
//! [`DEFAULT_MERGE_SIMILARITY`] similar (`closedloop_tracing::Fingerprint::similarity` of the
//! `closedloop.query.fingerprint` values, or of fingerprints of the captured texts), else
//! starts a new case. A case's id is derived from its first record's id, so it stays the same
//! as records are added.
//!
//! JSONL lines carry `input`, `expected` and `metadata`, the shape OpenAI evals, promptfoo,
//! DeepEval and Phoenix datasets load (map `input`/`expected` to their field names where they
//! differ); CSV has a header row. Output is sorted and carries no export timestamp, so two
//! exports of an unchanged store are byte-identical.

use closedloop_store::records::EvalsetRecord;
use closedloop_store::{Connection, StoreError};
use closedloop_tracing::Fingerprint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::export::span::failure_id;
use crate::records::SpanRef;
use crate::timefmt::format_rfc3339;

/// The similarity at or above which two queries are the same eval case.
pub const DEFAULT_MERGE_SIMILARITY: f64 = 0.7;

/// Why the eval set could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalsetError {
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// Whether to keep labelled or unlabelled records only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelFilter {
    /// Every record.
    #[default]
    Any,
    /// Records a reviewer labelled.
    Labelled,
    /// Records no reviewer labelled.
    Unlabelled,
}

/// Which failure records become cases.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalsetQuery {
    /// Records created at or after this Unix time.
    pub since_s: Option<i64>,
    /// Records of this template id.
    pub template_id: Option<String>,
    /// ... and of this template version.
    pub template_version: Option<String>,
    /// Records of this category.
    pub category: Option<String>,
    /// Labelled or unlabelled records only.
    pub labels: LabelFilter,
    /// The merge similarity (see the module docs).
    pub merge_similarity: f64,
    /// Only the newest this many of the records kept (`None`: all). Merging compares each
    /// record with every case before it, so a bound keeps a page's cost bounded.
    pub max_records: Option<usize>,
}

impl Default for EvalsetQuery {
    fn default() -> Self {
        Self {
            since_s: None,
            template_id: None,
            template_version: None,
            category: None,
            labels: LabelFilter::Any,
            merge_similarity: DEFAULT_MERGE_SIMILARITY,
            max_records: None,
        }
    }
}

impl EvalsetQuery {
    /// Keeps the records of `ID` or `ID@VERSION`.
    pub fn with_template(mut self, template: &str) -> Self {
        match template.split_once('@') {
            Some((id, version)) => {
                self.template_id = Some(id.to_owned());
                self.template_version = Some(version.to_owned());
            }
            None => self.template_id = Some(template.to_owned()),
        }
        self
    }
}

/// The failure record a case came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseSource {
    /// `closedloop.failure.id`.
    pub failure_id: String,
    /// The judged response's trace id, hex.
    pub trace_id: String,
    /// The judged response's span id, hex.
    pub span_id: String,
    /// Its template version, when known.
    pub template_version: Option<String>,
}

/// Everything about a case besides its input and expected answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseMetadata {
    /// The case's stable id.
    pub case_id: String,
    /// How many failure records merged into the case.
    pub count: usize,
    /// `query` when `input` is the captured query text, `fingerprint` when it is the query
    /// fingerprint, `none` when neither was known.
    pub input_kind: String,
    /// `closedloop.query.fingerprint` of the first record.
    pub query_fingerprint: Option<String>,
    /// The first record's failure id.
    pub failure_id: String,
    /// The first record's trace id, hex.
    pub trace_id: String,
    /// The first record's span id, hex.
    pub span_id: String,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `gen_ai.data_source.id`.
    pub data_source: Option<String>,
    /// `closedloop.context.chunk_ids`.
    pub chunk_ids: Option<Vec<String>>,
    /// The output messages, when captured.
    pub output: Option<String>,
    /// The signals of all merged records, in first-seen order.
    pub signals: Vec<String>,
    /// `closedloop.failure.category` of the first record.
    pub category: String,
    /// `closedloop.failure.stage` of the first record.
    pub stage: String,
    /// `closedloop.failure.severity` of the first record.
    pub severity: String,
    /// The reviewer's label (`good` or `bad`), from the first labelled record.
    pub label: Option<String>,
    /// When the first record was created, RFC 3339.
    pub first_seen: String,
    /// When the last record was created, RFC 3339.
    pub last_seen: String,
    /// Every record of the case, oldest first.
    pub sources: Vec<CaseSource>,
}

/// One eval case: a JSONL line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalCase {
    /// The query text, or its fingerprint when the text was not captured.
    pub input: String,
    /// The reviewer's expected answer, when one was given.
    pub expected: Option<String>,
    /// Everything else.
    pub metadata: CaseMetadata,
}

type Record = EvalsetRecord;

/// How two records' queries compare.
enum Similar {
    Fingerprint(Fingerprint),
    /// A value that is not an `mh64` fingerprint: only equal values match.
    Opaque(String),
    None,
}

fn similar(record: &Record) -> Similar {
    {
        if let Some(text) = &record.fingerprint {
            return match text.parse::<Fingerprint>() {
                Ok(fingerprint) if !fingerprint.is_empty() => Similar::Fingerprint(fingerprint),
                _ => Similar::Opaque(text.clone()),
            };
        }
        match &record.query {
            Some(query) => {
                let fingerprint = closedloop_tracing::fingerprint(query);
                if fingerprint.is_empty() {
                    Similar::Opaque(query.clone())
                } else {
                    Similar::Fingerprint(fingerprint)
                }
            }
            None => Similar::None,
        }
    }
}

fn matches(a: &Similar, b: &Similar, threshold: f64) -> bool {
    match (a, b) {
        (Similar::Fingerprint(a), Similar::Fingerprint(b)) => a
            .similarity(b)
            .is_some_and(|similarity| similarity >= threshold),
        (Similar::Opaque(a), Similar::Opaque(b)) => a == b,
        _ => false,
    }
}

fn keep(record: &Record, query: &EvalsetQuery) -> bool {
    query.since_s.is_none_or(|since| record.created_s >= since)
        && query
            .template_id
            .as_ref()
            .is_none_or(|id| record.template_id.as_ref() == Some(id))
        && query
            .template_version
            .as_ref()
            .is_none_or(|version| record.template_version.as_ref() == Some(version))
        && query
            .category
            .as_ref()
            .is_none_or(|category| record.category.as_str() == category)
        && match query.labels {
            LabelFilter::Any => true,
            LabelFilter::Labelled => record.label.is_some(),
            LabelFilter::Unlabelled => record.label.is_none(),
        }
}

fn case_id(first: SpanRef) -> String {
    let digest = Sha256::digest(failure_id(first).as_bytes());
    format!("ec_{}", hex::encode(&digest[..8]))
}

/// The eval cases of the store, oldest first.
pub fn cases(conn: &mut Connection, query: &EvalsetQuery) -> Result<Vec<EvalCase>, EvalsetError> {
    let mut records: Vec<Record> = conn
        .evalset_records()?
        .into_iter()
        .filter(|record| keep(record, query))
        .collect();
    records.sort_by(|a, b| {
        (a.created_s, a.key.trace_id, a.key.span_id).cmp(&(
            b.created_s,
            b.key.trace_id,
            b.key.span_id,
        ))
    });
    if let Some(max) = query.max_records {
        records.drain(..records.len().saturating_sub(max));
    }
    // Groups of record indices; each group compares by its first record.
    let similar: Vec<Similar> = records.iter().map(similar).collect();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for index in 0..records.len() {
        let joined = groups
            .iter_mut()
            .find(|group| matches(&similar[group[0]], &similar[index], query.merge_similarity));
        match joined {
            Some(group) => group.push(index),
            None => groups.push(vec![index]),
        }
    }
    Ok(groups
        .into_iter()
        .map(|group| build_case(&records, &group))
        .collect())
}

fn build_case(records: &[Record], group: &[usize]) -> EvalCase {
    let first = &records[group[0]];
    let last = &records[group[group.len() - 1]];
    let (input, input_kind) = match (&first.query, &first.fingerprint) {
        (Some(query), _) => (query.clone(), "query"),
        (None, Some(fingerprint)) => (fingerprint.clone(), "fingerprint"),
        (None, None) => (String::new(), "none"),
    };
    let members = || group.iter().map(|&index| &records[index]);
    let mut signals: Vec<String> = Vec::new();
    for signal in members().flat_map(|record| &record.signals) {
        if !signals.iter().any(|known| known == signal.as_str()) {
            signals.push(signal.as_str().to_owned());
        }
    }
    let id = case_id(first.key);
    EvalCase {
        input,
        expected: members().find_map(|record| record.expected.clone()),
        metadata: CaseMetadata {
            case_id: id,
            count: group.len(),
            input_kind: input_kind.to_owned(),
            query_fingerprint: first.fingerprint.clone(),
            failure_id: failure_id(first.key),
            trace_id: hex::encode(first.key.trace_id),
            span_id: hex::encode(first.key.span_id),
            template_id: first.template_id.clone(),
            template_version: first.template_version.clone(),
            model: first.model.clone(),
            data_source: first.data_source.clone(),
            chunk_ids: first.chunk_ids.clone(),
            output: first.output.clone(),
            signals,
            category: first.category.as_str().to_owned(),
            stage: first.stage.as_str().to_owned(),
            severity: first.severity.as_str().to_owned(),
            label: members().find_map(|record| record.label.map(|label| label.as_str().to_owned())),
            first_seen: format_rfc3339(first.created_s),
            last_seen: format_rfc3339(last.created_s),
            sources: members()
                .map(|record| CaseSource {
                    failure_id: failure_id(record.key),
                    trace_id: hex::encode(record.key.trace_id),
                    span_id: hex::encode(record.key.span_id),
                    template_version: record.template_version.clone(),
                })
                .collect(),
        },
    }
}

/// The cases as JSON Lines, one case per line.
pub fn to_jsonl(cases: &[EvalCase]) -> String {
    let mut out = String::new();
    for case in cases {
        // Serialising these plain structs cannot fail.
        if let Ok(line) = serde_json::to_string(case) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "case_id",
    "count",
    "input",
    "input_kind",
    "expected",
    "label",
    "category",
    "stage",
    "severity",
    "signals",
    "template_id",
    "template_version",
    "model",
    "data_source",
    "chunk_ids",
    "output",
    "trace_id",
    "span_id",
    "failure_ids",
    "first_seen",
    "last_seen",
];

/// One CSV field, quoted when it holds a comma, quote or line break (RFC 4180). A field that
/// a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage
/// return; queries are end users' text) gets a leading `'`, which spreadsheets show as text.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The cases as CSV with a header row; list fields are joined with `;`.
pub fn to_csv(cases: &[EvalCase]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for case in cases {
        let m = &case.metadata;
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        let fields = [
            m.case_id.clone(),
            m.count.to_string(),
            case.input.clone(),
            m.input_kind.clone(),
            optional(&case.expected),
            optional(&m.label),
            m.category.clone(),
            m.stage.clone(),
            m.severity.clone(),
            m.signals.join(";"),
            optional(&m.template_id),
            optional(&m.template_version),
            optional(&m.model),
            optional(&m.data_source),
            m.chunk_ids
                .as_ref()
                .map(|ids| ids.join(";"))
                .unwrap_or_default(),
            optional(&m.output),
            m.trace_id.clone(),
            m.span_id.clone(),
            m.sources
                .iter()
                .map(|source| source.failure_id.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            m.first_seen.clone(),
            m.last_seen.clone(),
        ];
        out.push_str(
            &fields
                .iter()
                .map(|field| csv_field(field))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
        // Formulas are shown as text, not run.
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("-1+1"), "'-1+1");
    }

    #[test]
    fn template_filter_parses_a_version() {
        let query = EvalsetQuery::default().with_template("answer@v3");
        assert_eq!(query.template_id.as_deref(), Some("answer"));
        assert_eq!(query.template_version.as_deref(), Some("v3"));
        let query = EvalsetQuery::default().with_template("answer");
        assert_eq!(query.template_version, None);
    }

    #[test]
    fn opaque_fingerprints_match_only_when_equal() {
        let a = Similar::Opaque("mh64:zz".into());
        assert!(matches(&a, &Similar::Opaque("mh64:zz".into()), 0.7));
        assert!(!matches(&a, &Similar::Opaque("mh64:zy".into()), 0.7));
        assert!(!matches(&Similar::None, &Similar::None, 0.7));
    }
}
