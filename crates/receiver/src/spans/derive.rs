//! What the receiver derives from spans that do not carry closedloop's attributes: the query
//! (and its fingerprint), the template text (the system messages), the request model, the
//! response id and chunk ids. Each function reads one convention's keys; the callers in
//! [`super`] decide the order.
//!
//! - **Query**: the last `user` message of the input, read from OpenInference
//!   `llm.input_messages.<i>.message.*`, GenAI `gen_ai.input.messages` (the `text` parts),
//!   OpenLLMetry `gen_ai.prompt.<i>.role/.content`, OpenInference `input.value` (plain text, or
//!   a JSON request body with `messages`) and GenAI `gen_ai.user.message` span events, in that
//!   order. A retriever's query is its OpenInference `input.value` or the `query` of
//!   OpenLLMetry's `traceloop.entity.input`.
//! - **Chunk ids** of a retrieved document: its id; else the first present key of
//!   `spans.chunk_id_metadata_keys` in its metadata; else `sha256:` and the first 16 hex digits
//!   of the SHA-256 of its content.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{as_str, indexed_key};

/// Keys of other conventions read here. They have no closedloop equivalent (they are the
/// material a closedloop attribute is derived from), so the registry's compat map has no
/// entry for them.
mod keys {
    pub(super) const OI_INPUT_MESSAGES: &str = "llm.input_messages.";
    pub(super) const OI_MESSAGE_ROLE: &str = ".message.role";
    pub(super) const OI_MESSAGE_CONTENT: &str = ".message.content";
    pub(super) const OI_MESSAGE_CONTENTS: &str = ".message.contents.";
    pub(super) const OI_CONTENT_TEXT: &str = ".message_content.text";
    pub(super) const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
    pub(super) const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
    pub(super) const OLL_PROMPT: &str = "gen_ai.prompt.";
    pub(super) const OLL_ROLE: &str = ".role";
    pub(super) const OLL_CONTENT: &str = ".content";
    pub(super) const OI_INPUT_VALUE: &str = "input.value";
    pub(super) const OI_OUTPUT_VALUE: &str = "output.value";
    pub(super) const OI_INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
    pub(super) const GEN_AI_USER_MESSAGE_EVENT: &str = "gen_ai.user.message";
    pub(super) const EVENT_CONTENT: &str = "content";
    pub(super) const TRACELOOP_ENTITY_INPUT: &str = "traceloop.entity.input";
    pub(super) const TRACELOOP_ENTITY_OUTPUT: &str = "traceloop.entity.output";
    pub(super) const OI_DOCUMENTS: &str = "retrieval.documents.";
    pub(super) const OI_DOCUMENT_ID: &str = ".document.id";
    pub(super) const OI_DOCUMENT_METADATA: &str = ".document.metadata";
    pub(super) const OI_DOCUMENT_CONTENT: &str = ".document.content";
    pub(super) const DB_RESULT_ID: &str = "db.query.result.id";
    pub(super) const DB_RESULT_METADATA: &str = "db.query.result.metadata";
    pub(super) const DB_RESULT_DOCUMENT: &str = "db.query.result.document";
}

const USER: &str = "user";
const SYSTEM: &str = "system";

/// One input message: its role and its text.
#[derive(Debug, PartialEq)]
pub(super) struct Message {
    pub(super) role: String,
    pub(super) text: String,
}

fn raw<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(as_str)
}

/// Reads one convention's input messages from a span's attributes.
type MessageReader = fn(&[KeyValue]) -> Vec<Message>;

/// The input messages of an LLM span, from the first convention that has any.
pub(super) fn input_messages(span: &Span) -> Vec<Message> {
    let attributes = &span.attributes;
    let readers: [MessageReader; 4] = [
        openinference_messages,
        |attributes| {
            raw(attributes, keys::GEN_AI_INPUT_MESSAGES)
                .map(genai_messages)
                .unwrap_or_default()
        },
        openllmetry_messages,
        |attributes| {
            raw(attributes, keys::OI_INPUT_VALUE)
                .map(request_body_messages)
                .unwrap_or_default()
        },
    ];
    readers
        .iter()
        .map(|read| read(attributes))
        .find(|messages| !messages.is_empty())
        .unwrap_or_default()
}

/// The query of an LLM span: the last user message, else the last `gen_ai.user.message`
/// event, else a plain-text `input.value`.
pub(super) fn llm_query(span: &Span, messages: &[Message]) -> Option<String> {
    if let Some(message) = messages.iter().rev().find(|message| message.role == USER) {
        return Some(message.text.clone());
    }
    if let Some(text) = span
        .events
        .iter()
        .rev()
        .filter(|event| event.name == keys::GEN_AI_USER_MESSAGE_EVENT)
        .find_map(|event| raw(&event.attributes, keys::EVENT_CONTENT))
    {
        return Some(text.to_owned());
    }
    raw(&span.attributes, keys::OI_INPUT_VALUE).and_then(plain_text)
}

/// The system messages, joined by a blank line: the app's fixed instructions, used as the
/// template text when the span names none. GenAI `gen_ai.system_instructions` (the text parts
/// of its JSON list) holds them apart from the input messages.
pub(super) fn system_text(span: &Span, messages: &[Message]) -> Option<String> {
    let parts: Vec<&str> = messages
        .iter()
        .filter(|message| message.role == SYSTEM)
        .map(|message| message.text.as_str())
        .collect();
    if !parts.is_empty() {
        return Some(parts.join("\n\n"));
    }
    let instructions = raw(&span.attributes, keys::GEN_AI_SYSTEM_INSTRUCTIONS)?;
    match serde_json::from_str::<Json>(instructions) {
        Ok(parts @ Json::Array(_)) => content_text(&parts),
        _ => plain_text(instructions),
    }
}

/// The query of a retrieval span: OpenInference `input.value` (plain text, or a JSON object's
/// `query`), else the `query` of OpenLLMetry's `traceloop.entity.input`.
pub(super) fn retrieval_query(span: &Span) -> Option<String> {
    let attributes = &span.attributes;
    if let Some(value) = raw(attributes, keys::OI_INPUT_VALUE) {
        if let Some(text) = plain_text(value) {
            return Some(text);
        }
        if let Some(text) = json_query(value) {
            return Some(text);
        }
    }
    raw(attributes, keys::TRACELOOP_ENTITY_INPUT).and_then(json_query)
}

/// The request model in OpenInference `llm.invocation_parameters` (`{"model": …}`).
pub(super) fn invocation_model(span: &Span) -> Option<String> {
    let parameters = raw(&span.attributes, keys::OI_INVOCATION_PARAMETERS)?;
    let json: Json = serde_json::from_str(parameters).ok()?;
    json.get("model")?.as_str().map(str::to_owned)
}

/// The provider's response id in the OpenInference `output.value` JSON body: its `id` (the
/// OpenAI instrumentation writes the response body), else `llm_output.id` (the LangChain
/// instrumentation writes LangChain's `LLMResult`).
pub(super) fn output_response_id(span: &Span) -> Option<String> {
    let body = raw(&span.attributes, keys::OI_OUTPUT_VALUE)?;
    let json: Json = serde_json::from_str(body).ok()?;
    json.get("id")
        .or_else(|| json.get("llm_output")?.get("id"))?
        .as_str()
        .map(str::to_owned)
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of a document's content: the chunk id
/// of a document that has neither an id nor an id-like metadata key.
pub(super) fn content_chunk_id(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..8]))
}

/// The first of `keys` present in a metadata object (a JSON object, or its string), as text.
fn metadata_id(metadata: &Json, keys: &[String]) -> Option<String> {
    let object = match metadata {
        Json::String(text) => return metadata_id(&serde_json::from_str(text).ok()?, keys),
        Json::Object(object) => object,
        _ => return None,
    };
    keys.iter().find_map(|key| match object.get(key)? {
        Json::String(text) if !text.is_empty() => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

/// A document's chunk id: its id, else a metadata key, else its content's hash.
fn document_id(
    id: Option<&str>,
    metadata: Option<&Json>,
    content: Option<&str>,
    metadata_keys: &[String],
) -> Option<String> {
    id.filter(|id| !id.is_empty())
        .map(str::to_owned)
        .or_else(|| metadata.and_then(|metadata| metadata_id(metadata, metadata_keys)))
        .or_else(|| content.map(content_chunk_id))
}

/// OpenInference `retrieval.documents.<i>.document.*`, in index order.
pub(super) fn openinference_document_ids(span: &Span, metadata_keys: &[String]) -> Vec<String> {
    #[derive(Default)]
    struct Document<'a> {
        id: Option<&'a str>,
        metadata: Option<Json>,
        content: Option<&'a str>,
    }
    let mut documents: std::collections::BTreeMap<usize, Document<'_>> = Default::default();
    for kv in &span.attributes {
        let Some(text) = kv.value.as_ref().and_then(as_str) else {
            continue;
        };
        let key = kv.key.as_str();
        if let Some(index) = indexed_key(key, keys::OI_DOCUMENTS, keys::OI_DOCUMENT_ID) {
            documents.entry(index).or_default().id = Some(text);
        } else if let Some(index) = indexed_key(key, keys::OI_DOCUMENTS, keys::OI_DOCUMENT_METADATA)
        {
            documents.entry(index).or_default().metadata = serde_json::from_str(text).ok();
        } else if let Some(index) = indexed_key(key, keys::OI_DOCUMENTS, keys::OI_DOCUMENT_CONTENT)
        {
            documents.entry(index).or_default().content = Some(text);
        }
    }
    documents
        .values()
        .filter_map(|doc| document_id(doc.id, doc.metadata.as_ref(), doc.content, metadata_keys))
        .collect()
}

/// OpenLLMetry `db.query.result` events, in event order.
pub(super) fn db_result_ids(
    span: &Span,
    event_name: &str,
    metadata_keys: &[String],
) -> Vec<String> {
    span.events
        .iter()
        .filter(|event| event.name == event_name)
        .filter_map(|event| {
            let attributes = &event.attributes;
            let metadata = raw(attributes, keys::DB_RESULT_METADATA)
                .and_then(|text| serde_json::from_str::<Json>(text).ok());
            document_id(
                raw(attributes, keys::DB_RESULT_ID),
                metadata.as_ref(),
                raw(attributes, keys::DB_RESULT_DOCUMENT),
                metadata_keys,
            )
        })
        .collect()
}

/// OpenLLMetry's LangChain retriever span: `traceloop.entity.output` is
/// `{"documents": [{"page_content": …, "metadata": {…}}], …}`.
pub(super) fn traceloop_document_ids(span: &Span, metadata_keys: &[String]) -> Vec<String> {
    let Some(output) = raw(&span.attributes, keys::TRACELOOP_ENTITY_OUTPUT) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<Json>(output) else {
        return Vec::new();
    };
    let Some(documents) = json.get("documents").and_then(Json::as_array) else {
        return Vec::new();
    };
    documents
        .iter()
        .filter_map(|document| match document {
            Json::String(content) => Some(content_chunk_id(content)),
            _ => document_id(
                document.get("id").and_then(Json::as_str),
                document.get("metadata"),
                document.get("page_content").and_then(Json::as_str),
                metadata_keys,
            ),
        })
        .collect()
}

/// `None` for text that is JSON (an object or array): a request body, not a question.
fn plain_text(value: &str) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return None;
    }
    let json_like = (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<Json>(trimmed).is_ok();
    (!json_like).then(|| value.to_owned())
}

/// The `query` string of a JSON object.
fn json_query(value: &str) -> Option<String> {
    let json: Json = serde_json::from_str(value).ok()?;
    json.get("query")?.as_str().map(str::to_owned)
}

/// The text of a message's `content`: a string, or the `text` of its text parts.
fn content_text(content: &Json) -> Option<String> {
    match content {
        Json::String(text) => Some(text.clone()),
        Json::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|part| {
                    part.get("type")
                        .and_then(Json::as_str)
                        .is_none_or(|kind| kind == "text")
                })
                .filter_map(|part| {
                    part.get("text")
                        .or_else(|| part.get("content"))
                        .and_then(Json::as_str)
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn message(role: Option<&str>, text: Option<String>) -> Option<Message> {
    Some(Message {
        role: role?.to_ascii_lowercase(),
        text: text?,
    })
}

/// OpenInference `llm.input_messages.<i>.message.role` with `.message.content` or the text
/// parts `.message.contents.<j>.message_content.text`.
fn openinference_messages(attributes: &[KeyValue]) -> Vec<Message> {
    #[derive(Default)]
    struct Parts<'a> {
        role: Option<&'a str>,
        content: Option<&'a str>,
        texts: std::collections::BTreeMap<usize, &'a str>,
    }
    let mut messages: std::collections::BTreeMap<usize, Parts<'_>> = Default::default();
    for kv in attributes {
        let Some(rest) = kv.key.strip_prefix(keys::OI_INPUT_MESSAGES) else {
            continue;
        };
        let Some(text) = kv.value.as_ref().and_then(as_str) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let Some(index) = super::parse_index(index) else {
            continue;
        };
        let field = format!(".{field}");
        let parts = messages.entry(index).or_default();
        if field == keys::OI_MESSAGE_ROLE {
            parts.role = Some(text);
        } else if field == keys::OI_MESSAGE_CONTENT {
            parts.content = Some(text);
        } else if let Some(part) =
            indexed_key(&field, keys::OI_MESSAGE_CONTENTS, keys::OI_CONTENT_TEXT)
        {
            parts.texts.insert(part, text);
        }
    }
    messages
        .into_values()
        .filter_map(|parts| {
            let text = parts.content.map(str::to_owned).or_else(|| {
                (!parts.texts.is_empty())
                    .then(|| parts.texts.values().copied().collect::<Vec<_>>().join("\n"))
            });
            message(parts.role, text)
        })
        .collect()
}

/// GenAI `gen_ai.input.messages`: `[{"role": …, "parts": [{"type": "text", "content": …}]}]`.
fn genai_messages(value: &str) -> Vec<Message> {
    let Ok(Json::Array(items)) = serde_json::from_str::<Json>(value) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let role = item.get("role").and_then(Json::as_str);
            let text = item
                .get("parts")
                .and_then(content_text)
                .or_else(|| item.get("content").and_then(content_text));
            message(role, text)
        })
        .collect()
}

/// OpenLLMetry `gen_ai.prompt.<i>.role` and `gen_ai.prompt.<i>.content`.
fn openllmetry_messages(attributes: &[KeyValue]) -> Vec<Message> {
    let mut messages: std::collections::BTreeMap<usize, (Option<&str>, Option<&str>)> =
        Default::default();
    for kv in attributes {
        let Some(text) = kv.value.as_ref().and_then(as_str) else {
            continue;
        };
        if let Some(index) = indexed_key(&kv.key, keys::OLL_PROMPT, keys::OLL_ROLE) {
            messages.entry(index).or_default().0 = Some(text);
        } else if let Some(index) = indexed_key(&kv.key, keys::OLL_PROMPT, keys::OLL_CONTENT) {
            messages.entry(index).or_default().1 = Some(text);
        }
    }
    messages
        .into_values()
        .filter_map(|(role, content)| {
            // The content may itself be a JSON list of parts.
            let text = content.map(|content| {
                serde_json::from_str::<Json>(content)
                    .ok()
                    .filter(Json::is_array)
                    .and_then(|parts| content_text(&parts))
                    .unwrap_or_else(|| content.to_owned())
            });
            message(role, text)
        })
        .collect()
}

/// OpenInference `input.value` holding the JSON request body: its `messages`.
fn request_body_messages(value: &str) -> Vec<Message> {
    let Ok(json) = serde_json::from_str::<Json>(value) else {
        return Vec::new();
    };
    let Some(items) = json.get("messages").and_then(Json::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            message(
                item.get("role").and_then(Json::as_str),
                item.get("content").and_then(content_text),
            )
        })
        .collect()
}
