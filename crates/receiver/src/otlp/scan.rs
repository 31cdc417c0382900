//! A pre-decode scan of an OTLP/trace request: how many messages it holds and how much heap
//! decoding it will take, read from the wire bytes in one pass that allocates nothing.
//!
//! Decoding amplifies: an empty `KeyValue` is two bytes of protobuf or three of JSON, and a
//! struct of dozens of bytes once decoded, so a body far under the size limit can decode to
//! gigabytes. The scan walks the bytes with a small static schema of the trace message tree
//! (field number and JSON name to kind) and charges every message, string and byte string what
//! the decoded value will occupy (`size_of` the generated type, with room for `Vec` growth and
//! allocator rounding), so the request can be refused, or wait its turn, before the memory is
//! spent. [`super::budget`] holds the limits the estimate is checked against.
//!
//! The estimate is an upper bound of what decoding allocates, not a guess around it: the tests
//! count real allocations to keep it one.

use std::fmt;
use std::mem::size_of;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What decoding a request will take, as read by [`scan_protobuf`] or [`scan_json`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Estimate {
    /// An upper bound of the heap the decoded request holds at its peak, in bytes.
    pub(crate) decoded_bytes: usize,
    /// The messages (spans, attributes, values, ...) the request holds.
    pub(crate) elements: usize,
    /// JSON only: an upper bound of the extra heap the normalising fallback takes (a
    /// `serde_json::Value` of the whole body), in bytes.
    pub(crate) fallback_bytes: usize,
    /// JSON only: whether the body has `null` members or non-finite `doubleValue` strings, the
    /// two inputs only the normalising fallback accepts.
    pub(crate) needs_normalising: bool,
}

/// Why the wire bytes are not a protobuf `ExportTraceServiceRequest`. Decoding would fail the
/// same way, so these are client errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanError {
    /// The body ends inside a field.
    #[error("truncated message")]
    Truncated,
    /// A varint is longer than ten bytes or overflows 64 bits.
    #[error("invalid varint")]
    InvalidVarint,
    /// A field key is invalid: field number 0 or above 2^29 - 1, or wire type 6 or 7.
    #[error("invalid field key {0}")]
    InvalidKey(u64),
    /// A known field arrives with a wire type other than its schema's.
    #[error("invalid wire type {wire_type} for field {field} of {message}")]
    WireType {
        /// The message the field belongs to.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The wire type received.
        wire_type: u8,
    },
    /// A group end tag without a matching start.
    #[error("unexpected end group tag")]
    EndGroup,
    /// Messages are nested deeper than the protobuf decoder allows (100 levels).
    #[error("messages nested deeper than {RECURSION_LIMIT} levels")]
    TooDeep,
}

/// prost's recursion limit: messages nested deeper fail to decode.
const RECURSION_LIMIT: u32 = 100;

/// The messages of the OTLP/trace request tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Message(Message),
    /// A UTF-8 string.
    String,
    /// Bytes; hex (ids) or base64 (`bytesValue`) in JSON.
    Bytes,
    /// A varint scalar (integers, booleans, enums).
    Varint,
    /// A `fixed64` or `double`.
    Fixed64,
    /// A `fixed32`.
    Fixed32,
}

#[derive(Clone, Copy, Debug)]
struct Field {
    number: u32,
    json: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn one(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        repeated: false,
    }
}

const fn many(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        repeated: true,
    }
}

use Kind::{Bytes, Fixed32, Fixed64, String as Str, Varint};

const ATTRIBUTES: Field = many(9, "attributes", Kind::Message(Message::KeyValue));

impl Message {
    /// The fields, from `opentelemetry-proto`'s generated types.
    fn fields(self) -> &'static [Field] {
        use Kind::Message as M;
        match self {
            Self::Request => const { &[many(1, "resourceSpans", M(Self::ResourceSpans))] },
            Self::ResourceSpans => {
                const {
                    &[
                        one(1, "resource", M(Self::Resource)),
                        many(2, "scopeSpans", M(Self::ScopeSpans)),
                        one(3, "schemaUrl", Str),
                    ]
                }
            }
            Self::Resource => {
                const {
                    &[
                        many(1, "attributes", M(Self::KeyValue)),
                        one(2, "droppedAttributesCount", Varint),
                        many(3, "entityRefs", M(Self::EntityRef)),
                    ]
                }
            }
            Self::EntityRef => {
                const {
                    &[
                        one(1, "schemaUrl", Str),
                        one(2, "type", Str),
                        many(3, "idKeys", Str),
                        many(4, "descriptionKeys", Str),
                    ]
                }
            }
            Self::ScopeSpans => {
                const {
                    &[
                        one(1, "scope", M(Self::Scope)),
                        many(2, "spans", M(Self::Span)),
                        one(3, "schemaUrl", Str),
                    ]
                }
            }
            Self::Scope => {
                const {
                    &[
                        one(1, "name", Str),
                        one(2, "version", Str),
                        many(3, "attributes", M(Self::KeyValue)),
                        one(4, "droppedAttributesCount", Varint),
                    ]
                }
            }
            Self::Span => {
                const {
                    &[
                        one(1, "traceId", Bytes),
                        one(2, "spanId", Bytes),
                        one(3, "traceState", Str),
                        one(4, "parentSpanId", Bytes),
                        one(16, "flags", Fixed32),
                        one(5, "name", Str),
                        one(6, "kind", Varint),
                        one(7, "startTimeUnixNano", Fixed64),
                        one(8, "endTimeUnixNano", Fixed64),
                        ATTRIBUTES,
                        one(10, "droppedAttributesCount", Varint),
                        many(11, "events", M(Self::Event)),
                        one(12, "droppedEventsCount", Varint),
                        many(13, "links", M(Self::Link)),
                        one(14, "droppedLinksCount", Varint),
                        one(15, "status", M(Self::Status)),
                    ]
                }
            }
            Self::Event => {
                const {
                    &[
                        one(1, "timeUnixNano", Fixed64),
                        one(2, "name", Str),
                        many(3, "attributes", M(Self::KeyValue)),
                        one(4, "droppedAttributesCount", Varint),
                    ]
                }
            }
            Self::Link => {
                const {
                    &[
                        one(1, "traceId", Bytes),
                        one(2, "spanId", Bytes),
                        one(3, "traceState", Str),
                        many(4, "attributes", M(Self::KeyValue)),
                        one(5, "droppedAttributesCount", Varint),
                        one(6, "flags", Fixed32),
                    ]
                }
            }
            Self::Status => const { &[one(2, "message", Str), one(3, "code", Varint)] },
            Self::KeyValue => {
                const {
                    &[
                        one(1, "key", Str),
                        one(2, "value", M(Self::AnyValue)),
                        one(3, "keyStrindex", Varint),
                    ]
                }
            }
            Self::AnyValue => {
                const {
                    &[
                        one(1, "stringValue", Str),
                        one(2, "boolValue", Varint),
                        one(3, "intValue", Varint),
                        one(4, "doubleValue", Fixed64),
                        one(5, "arrayValue", M(Self::ArrayValue)),
                        one(6, "kvlistValue", M(Self::KeyValueList)),
                        one(7, "bytesValue", Bytes),
                        one(8, "stringValueStrindex", Varint),
                    ]
                }
            }
            Self::ArrayValue => const { &[many(1, "values", M(Self::AnyValue))] },
            Self::KeyValueList => const { &[many(1, "values", M(Self::KeyValue))] },
        }
    }

    /// The size of the generated struct: what one element of a `Vec` of it takes.
    const fn size(self) -> usize {
        match self {
            Self::Request => size_of::<ExportTraceServiceRequest>(),
            Self::ResourceSpans => size_of::<ResourceSpans>(),
            Self::Resource => size_of::<Resource>(),
            Self::EntityRef => size_of::<EntityRef>(),
            Self::ScopeSpans => size_of::<ScopeSpans>(),
            Self::Scope => size_of::<InstrumentationScope>(),
            Self::Span => size_of::<Span>(),
            Self::Event => size_of::<Event>(),
            Self::Link => size_of::<Link>(),
            Self::Status => size_of::<Status>(),
            Self::KeyValue => size_of::<KeyValue>(),
            Self::AnyValue => size_of::<AnyValue>(),
            Self::ArrayValue => size_of::<ArrayValue>(),
            Self::KeyValueList => size_of::<KeyValueList>(),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Request => "ExportTraceServiceRequest",
            Self::ResourceSpans => "ResourceSpans",
            Self::Resource => "Resource",
            Self::EntityRef => "EntityRef",
            Self::ScopeSpans => "ScopeSpans",
            Self::Scope => "InstrumentationScope",
            Self::Span => "Span",
            Self::Event => "Event",
            Self::Link => "Link",
            Self::Status => "Status",
            Self::KeyValue => "KeyValue",
            Self::AnyValue => "AnyValue",
            Self::ArrayValue => "ArrayValue",
            Self::KeyValueList => "KeyValueList",
        }
    }

    fn field(self, number: u32) -> Option<(usize, Field)> {
        self.fields()
            .iter()
            .copied()
            .enumerate()
            .find(|(_, field)| field.number == number)
    }

    fn json_field(self, name: &str) -> Option<(usize, Field)> {
        self.fields()
            .iter()
            .copied()
            .enumerate()
            .find(|(_, field)| field.json == name)
    }
}

/// The heap one element of a repeated field takes. A `Vec` grows by doubling from a first
/// capacity of 4, so it holds at most twice its elements, and 4 for the first one.
const fn slot(size: usize, first: bool) -> usize {
    if first {
        4 * size
    } else {
        2 * size
    }
}

/// The heap an allocation of `bytes` takes, with the allocator's rounding to its size classes
/// (mimalloc wastes at most 1/8, plus a minimum block).
const fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes + bytes / 8 + 16
    }
}

/// Which repeated fields of one message have had their first element.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// Marks field `index` as seen; returns whether this was its first element.
    fn first(&mut self, index: usize) -> bool {
        let bit = 1u32 << index;
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

/// Scans a protobuf `ExportTraceServiceRequest`.
///
/// Fails where `prost` would fail on the structure (truncated fields, bad keys or wire types,
/// nesting past 100 levels); UTF-8 is left to the decoder.
pub(crate) fn scan_protobuf(bytes: &[u8]) -> Result<Estimate, ScanError> {
    let mut estimate = Estimate::default();
    scan_message(bytes, Message::Request, RECURSION_LIMIT, &mut estimate)?;
    Ok(estimate)
}

fn scan_message(
    mut buf: &[u8],
    message: Message,
    depth: u32,
    estimate: &mut Estimate,
) -> Result<(), ScanError> {
    if depth == 0 {
        return Err(ScanError::TooDeep);
    }
    let mut seen = Seen::default();
    while !buf.is_empty() {
        let (number, wire_type) = read_key(&mut buf)?;
        let Some((index, field)) = message.field(number) else {
            skip_field(&mut buf, number, wire_type, depth)?;
            continue;
        };
        let expected = match field.kind {
            Kind::Message(_) | Kind::String | Kind::Bytes => WIRE_LEN,
            Kind::Varint => WIRE_VARINT,
            Kind::Fixed64 => WIRE_FIXED64,
            Kind::Fixed32 => WIRE_FIXED32,
        };
        if wire_type != expected {
            return Err(ScanError::WireType {
                message: message.name(),
                field: number,
                wire_type,
            });
        }
        match field.kind {
            Kind::Message(child) => {
                let body = read_len(&mut buf)?;
                estimate.elements += 1;
                if field.repeated {
                    estimate.decoded_bytes += slot(child.size(), seen.first(index));
                }
                scan_message(body, child, depth - 1, estimate)?;
            }
            Kind::String | Kind::Bytes => {
                let body = read_len(&mut buf)?;
                if field.repeated {
                    estimate.decoded_bytes +=
                        slot(size_of::<std::string::String>(), seen.first(index));
                }
                estimate.decoded_bytes += allocation(body.len());
            }
            Kind::Varint => {
                read_varint(&mut buf)?;
            }
            Kind::Fixed64 => advance(&mut buf, 8)?,
            Kind::Fixed32 => advance(&mut buf, 4)?,
        }
    }
    Ok(())
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

/// Skips a field the schema does not know, as `prost::encoding::skip_field` does.
fn skip_field(buf: &mut &[u8], number: u32, wire_type: u8, depth: u32) -> Result<(), ScanError> {
    if depth == 0 {
        return Err(ScanError::TooDeep);
    }
    match wire_type {
        WIRE_VARINT => read_varint(buf).map(drop),
        WIRE_FIXED64 => advance(buf, 8),
        WIRE_LEN => read_len(buf).map(drop),
        WIRE_FIXED32 => advance(buf, 4),
        WIRE_START_GROUP => loop {
            let (inner, inner_wire_type) = read_key(buf)?;
            if inner_wire_type == WIRE_END_GROUP {
                return if inner == number {
                    Ok(())
                } else {
                    Err(ScanError::EndGroup)
                };
            }
            skip_field(buf, inner, inner_wire_type, depth - 1)?;
        },
        _ => Err(ScanError::EndGroup),
    }
}

fn read_key(buf: &mut &[u8]) -> Result<(u32, u8), ScanError> {
    let key = read_varint(buf)?;
    let wire_type = (key & 7) as u8;
    let number = key >> 3;
    if key > u64::from(u32::MAX) || wire_type > WIRE_FIXED32 || number == 0 {
        return Err(ScanError::InvalidKey(key));
    }
    // `key <= u32::MAX` was checked, so the field number fits.
    Ok((number as u32, wire_type))
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, ScanError> {
    let mut value = 0u64;
    for (index, &byte) in buf.iter().enumerate().take(10) {
        if index == 9 && byte > 1 {
            return Err(ScanError::InvalidVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            *buf = &buf[index + 1..];
            return Ok(value);
        }
    }
    if buf.len() >= 10 {
        Err(ScanError::InvalidVarint)
    } else {
        Err(ScanError::Truncated)
    }
}

fn read_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ScanError> {
    let len = read_varint(buf)?;
    let len = usize::try_from(len).map_err(|_| ScanError::Truncated)?;
    if len > buf.len() {
        return Err(ScanError::Truncated);
    }
    let (body, rest) = buf.split_at(len);
    *buf = rest;
    Ok(body)
}

fn advance(buf: &mut &[u8], len: usize) -> Result<(), ScanError> {
    if len > buf.len() {
        return Err(ScanError::Truncated);
    }
    *buf = &buf[len..];
    Ok(())
}

// JSON.
//
// `opentelemetry-proto`'s serde mapping decodes each `AnyValue` through `#[serde(flatten)]`,
// which first buffers the whole object, nested values included, as serde's private `Content`
// tree; a nested value is buffered again by each `AnyValue` around it. A JSON node inside `k`
// `AnyValue` objects is therefore held `k` times over while decoding, which the scan charges.
// The normalising fallback parses the whole body as a `serde_json::Value` first, charged as
// `fallback_bytes`.

/// The heap one buffered `Content` node takes (a 32-byte enum, twice over for `Vec` growth,
/// and its share of a map entry).
const CONTENT_NODE: usize = 96;
/// The heap one `serde_json::Value` node takes in an array (32 bytes, doubled for growth).
const VALUE_NODE: usize = 64;
/// The heap one member of a `serde_json::Map` (a `BTreeMap`) takes: its key `String` and
/// `Value` in a node of 11 entries, with the node's own overhead.
const VALUE_MEMBER: usize = 96;
/// A `BTreeMap` allocates a whole leaf for its first member.
const VALUE_MAP: usize = 640;

/// Scans an OTLP/JSON `ExportTraceServiceRequest`.
///
/// Fails only on JSON syntax, with serde_json's error; a body that is valid JSON but not a
/// request is left for the decoder to refuse.
pub(crate) fn scan_json(bytes: &[u8]) -> Result<Estimate, serde_json::Error> {
    let mut scan = JsonScan::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Node {
        kind: NodeKind::Message(Message::Request),
        any_values: 0,
        scan: &mut scan,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(scan.estimate)
}

#[derive(Default)]
struct JsonScan {
    estimate: Estimate,
}

impl JsonScan {
    /// Charges one JSON node with `len` bytes of string, inside `any_values` `AnyValue`s.
    fn node(&mut self, any_values: usize, len: usize) {
        let estimate = &mut self.estimate;
        estimate.decoded_bytes += any_values * (CONTENT_NODE + allocation(len));
        estimate.fallback_bytes += VALUE_NODE + allocation(len);
    }
}

/// What the scan expects at a JSON position.
#[derive(Clone, Copy, Debug)]
enum NodeKind {
    Message(Message),
    /// An array of messages; `null` also decodes.
    Repeated(Message),
    String,
    /// An array of strings.
    RepeatedString,
    /// A hex or base64 string, decoded to bytes beside the string.
    Bytes,
    /// A number, boolean or numeric string, or a field the schema does not know.
    Other,
}

impl NodeKind {
    fn of(field: Field) -> Self {
        match (field.kind, field.repeated) {
            (Kind::Message(message), false) => Self::Message(message),
            (Kind::Message(message), true) => Self::Repeated(message),
            (Kind::String, false) => Self::String,
            (Kind::String | Kind::Bytes, true) => Self::RepeatedString,
            (Kind::Bytes, false) => Self::Bytes,
            (Kind::Varint | Kind::Fixed64 | Kind::Fixed32, _) => Self::Other,
        }
    }
}

/// One JSON value at a known position.
struct Node<'s> {
    kind: NodeKind,
    /// How many `AnyValue` objects enclose this node.
    any_values: usize,
    scan: &'s mut JsonScan,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an OTLP/JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scan.node(self.any_values, 0);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scan.node(self.any_values, 0);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scan.node(self.any_values, 0);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scan.node(self.any_values, 0);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scan.node(self.any_values, 0);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        let len = value.len();
        self.scan.node(self.any_values, len);
        let decoded = &mut self.scan.estimate.decoded_bytes;
        match self.kind {
            NodeKind::String => *decoded += allocation(len),
            // The string itself (base64 is read into a `String` first) and the bytes.
            NodeKind::Bytes => *decoded += 2 * allocation(len),
            // A numeric string may be buffered on its way to an integer.
            NodeKind::Other => *decoded += allocation(len),
            NodeKind::RepeatedString | NodeKind::Message(_) | NodeKind::Repeated(_) => {}
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Node {
            kind,
            any_values,
            scan,
        } = self;
        scan.node(any_values, 0);
        let (item, size) = match kind {
            NodeKind::Repeated(message) => (NodeKind::Message(message), message.size()),
            NodeKind::RepeatedString => (NodeKind::String, size_of::<std::string::String>()),
            _ => (NodeKind::Other, 0),
        };
        let mut first = true;
        while seq
            .next_element_seed(Node {
                kind: item,
                any_values,
                scan,
            })?
            .is_some()
        {
            scan.estimate.decoded_bytes += slot(size, first);
            first = false;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Node {
            kind,
            mut any_values,
            scan,
        } = self;
        scan.node(any_values, 0);
        let message = match kind {
            NodeKind::Message(message) => Some(message),
            _ => None,
        };
        if message.is_some() {
            scan.estimate.elements += 1;
        }
        if message == Some(Message::AnyValue) {
            any_values += 1;
        }
        let mut members = 0usize;
        while let Some(key) = map.next_key_seed(Key(message))? {
            members += 1;
            scan.estimate.fallback_bytes += VALUE_MEMBER + allocation(key.len);
            scan.estimate.decoded_bytes += any_values * (CONTENT_NODE + allocation(key.len));
            let kind = key.field.map_or(NodeKind::Other, NodeKind::of);
            let value = map.next_value_seed(Member {
                node: Node {
                    kind,
                    any_values,
                    scan,
                },
                double: key.double,
            })?;
            if value.null || value.non_finite {
                scan.estimate.needs_normalising = true;
            }
        }
        if members > 0 {
            scan.estimate.fallback_bytes += VALUE_MAP;
        }
        Ok(())
    }
}

/// An object key, matched against the fields of the message it belongs to.
struct Key(Option<Message>);

struct MatchedKey {
    field: Option<Field>,
    len: usize,
    /// The key is `doubleValue`, whose value may be a non-finite string.
    double: bool,
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = MatchedKey;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<MatchedKey, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = MatchedKey;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<MatchedKey, E> {
        Ok(MatchedKey {
            field: self
                .0
                .and_then(|message| message.json_field(key))
                .map(|(_, field)| field),
            len: key.len(),
            double: key == "doubleValue",
        })
    }
}

/// An object member's value: a [`Node`], and what normalising would remove.
struct Member<'s> {
    node: Node<'s>,
    double: bool,
}

#[derive(Default)]
struct MemberValue {
    null: bool,
    non_finite: bool,
}

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = MemberValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<MemberValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = MemberValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an OTLP/JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<MemberValue, E> {
        self.node.visit_bool(value).map(|()| MemberValue::default())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<MemberValue, E> {
        self.node.visit_i64(value).map(|()| MemberValue::default())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<MemberValue, E> {
        self.node.visit_u64(value).map(|()| MemberValue::default())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<MemberValue, E> {
        self.node.visit_f64(value).map(|()| MemberValue::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<MemberValue, E> {
        self.node.visit_unit().map(|()| MemberValue {
            null: true,
            non_finite: false,
        })
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<MemberValue, E> {
        let non_finite = self.double && matches!(value, "NaN" | "Infinity" | "-Infinity");
        self.node.visit_str(value).map(|()| MemberValue {
            null: false,
            non_finite,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MemberValue, A::Error> {
        self.node.visit_seq(seq).map(|()| MemberValue::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MemberValue, A::Error> {
        self.node.visit_map(map).map(|()| MemberValue::default())
    }
}

#[cfg(test)]
mod tests;
