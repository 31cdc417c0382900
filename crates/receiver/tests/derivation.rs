//! What the receiver derives from spans of foreign instrumentations, against a real pipeline
//! and store: the query fingerprint (the retriever's query over the LLM span's rendered
//! prompt), the template, chunk ids from document metadata, and no content in a default store.

mod support;

use closedloop_receiver::Pipeline;
use closedloop_store::inspect::Param;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::*;

const QUESTION: &str = "How long do refunds take?";
const SYSTEM: &str = "You are a support assistant. Answer from the context only.";

fn fingerprint(query: &str) -> String {
    closedloop_tracing::fingerprint(query).to_string()
}

/// A LangChain RAG call as OpenInference writes it: a RETRIEVER span whose documents have
/// only content and metadata, then an LLM span whose last user message is the rendered prompt.
fn rag_trace(trace_id: [u8; 16]) -> (Span, Span) {
    let retriever = Span {
        trace_id: trace_id.to_vec(),
        span_id: rand::random::<[u8; 8]>().to_vec(),
        name: "VectorStoreRetriever".into(),
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes: vec![
            text("openinference.span.kind", "RETRIEVER"),
            text("input.value", QUESTION),
            text(
                "retrieval.documents.0.document.content",
                "Refunds take 5 days.",
            ),
            text(
                "retrieval.documents.0.document.metadata",
                r#"{"source": "kb/refunds.md"}"#,
            ),
            text(
                "retrieval.documents.1.document.content",
                "Shipping is free.",
            ),
            text(
                "retrieval.documents.1.document.metadata",
                r#"{"source": "kb/shipping.md"}"#,
            ),
        ],
        ..Default::default()
    };
    let prompt =
        format!("Context:\nRefunds take 5 days.\nShipping is free.\n\nQuestion: {QUESTION}");
    let llm = Span {
        trace_id: trace_id.to_vec(),
        span_id: rand::random::<[u8; 8]>().to_vec(),
        name: "ChatOpenAI".into(),
        start_time_unix_nano: 3_000,
        end_time_unix_nano: 4_000,
        attributes: vec![
            text("openinference.span.kind", "LLM"),
            text("llm.input_messages.0.message.role", "system"),
            text("llm.input_messages.0.message.content", SYSTEM),
            text("llm.input_messages.1.message.role", "user"),
            text("llm.input_messages.1.message.content", &prompt),
            text("llm.output_messages.0.message.role", "assistant"),
            text("llm.output_messages.0.message.content", "About 5 days."),
            text(
                "input.value",
                &format!(r#"{{"messages": [{{"role": "user", "content": "{QUESTION}"}}]}}"#),
            ),
            text(
                "output.value",
                r#"{"id": "chatcmpl-7", "choices": [{"message": {"content": "About 5 days."}}]}"#,
            ),
            text("llm.model_name", "gpt-4o-mini-2024-07-18"),
            text("llm.invocation_parameters", r#"{"model": "gpt-4o-mini"}"#),
            text("llm.provider", "openai"),
            text("session.id", "sess-1"),
        ],
        ..Default::default()
    };
    (retriever, llm)
}

type Row = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The fingerprint, template id, model, response id and chunk ids of the LLM span's row.
fn indexed(dir: &std::path::Path, llm: &Span) -> Row {
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.join("closedloop.db"), false)
            .unwrap();
    let row = conn
        .inspect_rows(
            "SELECT r.fingerprint, ti.value, m.value, r.response_id, r.chunk_ids FROM responses r
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings m ON m.id = r.model
             WHERE r.trace_id = ?1 AND r.span_id = ?2",
            &[Param::Blob(&llm.trace_id), Param::Blob(&llm.span_id)],
            5,
        )
        .unwrap()
        .remove(0);
    let text = |i: usize| row[i].text().map(str::to_owned);
    let chunk_ids = row[4].text().map(str::to_owned).or_else(|| {
        row[4]
            .blob()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    });
    (text(0), text(1), text(2), text(3), chunk_ids)
}

fn stored_text(dir: &std::path::Path) -> (i64, i64) {
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.join("closedloop.db"), false)
            .unwrap();
    let count = |conn: &mut closedloop_store::Connection, sql: &str| {
        conn.inspect_rows(sql, &[], 1).unwrap()[0][0].int().unwrap()
    };
    (
        count(&mut conn, "SELECT COUNT(*) FROM response_content"),
        count(&mut conn, "SELECT COUNT(*) FROM templates"),
    )
}

#[tokio::test]
async fn a_default_store_keeps_fingerprints_and_no_text() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    let (retriever, llm) = rag_trace(rand::random());
    let outcome = pipeline
        .ingest(request(vec![retriever, llm.clone()]))
        .await
        .unwrap();
    assert_eq!(outcome.rejected_spans, 0);
    pipeline.shutdown().await.unwrap();

    let (found, template_id, model, response_id, chunk_ids) = indexed(dir.path(), &llm);
    // The retriever's query, not the rendered prompt of the LLM span.
    assert_eq!(found, Some(fingerprint(QUESTION)));
    let hash = hex_sha256(SYSTEM);
    assert_eq!(template_id, Some(format!("auto-{}", &hash[..8])));
    assert_eq!(model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(response_id.as_deref(), Some("chatcmpl-7"));
    let chunk_ids = chunk_ids.expect("chunk ids carried from the retriever");
    assert!(
        chunk_ids.find("kb/refunds.md") < chunk_ids.find("kb/shipping.md"),
        "{chunk_ids}"
    );
    // No prompt, answer, query or system text is stored.
    assert_eq!(stored_text(dir.path()), (0, 0));
    let file = std::fs::read(dir.path().join("closedloop.db")).unwrap();
    for needle in [QUESTION, SYSTEM, "About 5 days."] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} is in the store file"
        );
    }
}

#[tokio::test]
async fn with_content_stored_the_retrievers_query_is_the_query_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.store.store_content = true;
    let pipeline = Pipeline::start(config).await.unwrap();
    let (retriever, llm) = rag_trace(rand::random());
    // The retrieval step arrives in an earlier request than its LLM span.
    pipeline.ingest(request(vec![retriever])).await.unwrap();
    pipeline.ingest(request(vec![llm.clone()])).await.unwrap();
    pipeline.shutdown().await.unwrap();

    assert_eq!(indexed(dir.path(), &llm).0, Some(fingerprint(QUESTION)));
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.path().join("closedloop.db"), false)
            .unwrap();
    let rows = conn
        .inspect_rows("SELECT query FROM response_content", &[], 1)
        .unwrap();
    assert_eq!(rows[0][0].text(), Some(QUESTION));
    assert_eq!(
        stored_text(dir.path()).1,
        0,
        "of system messages only the hash is kept, even with content stored"
    );
}

/// `sha256:` stripped: the hex SHA-256 of a template text.
fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}
