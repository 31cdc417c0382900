//! The registry after [`crate::lint::resolve`]: every reference resolved, every mandatory field
//! present, enum members and compat keys checked. The renderers work only on this model.

use crate::model::{Compat, GroupKind, Instrument, RequirementLevel, SpanKind, Stability, Value};

/// A registry that passed every lint.
#[derive(Debug, Clone)]
pub struct Model {
    /// Every attribute definition, sorted by id.
    pub attributes: Vec<AttributeDef>,
    /// Every group, in file-name order and then file order.
    pub groups: Vec<Group>,
}

impl Model {
    /// The definition of `id`, if the registry has one.
    pub fn attribute(&self, id: &str) -> Option<&AttributeDef> {
        self.attributes
            .binary_search_by(|attribute| attribute.id.as_str().cmp(id))
            .ok()
            .map(|index| &self.attributes[index])
    }

    /// The groups of one kind, in registry order.
    pub fn groups_of(&self, kind: GroupKind) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(move |group| group.kind == kind)
    }
}

/// An attribute definition.
#[derive(Debug, Clone)]
pub struct AttributeDef {
    /// The attribute key.
    pub id: String,
    /// One-sentence description.
    pub brief: String,
    /// Longer description.
    pub note: Option<String>,
    /// The value type.
    pub value_type: ValueType,
    /// Example values, at least one.
    pub examples: Vec<Value>,
    /// Stability.
    pub stability: Stability,
    /// Equivalent keys in OpenInference and OpenLLMetry.
    pub compat: Compat,
    /// The id of the attribute group that defines it.
    pub group: String,
}

/// The value type of an attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    /// A primitive or array type.
    Primitive(Primitive),
    /// A string enum with well-known members.
    Enum(Vec<Member>),
}

impl ValueType {
    /// The type name as the registry spells it (`string` for enums).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Primitive(primitive) => primitive.name(),
            Self::Enum(_) => "string",
        }
    }

    /// The Rust type an OpenTelemetry attribute of this type holds.
    pub fn rust_type(&self) -> &'static str {
        match self {
            Self::Primitive(primitive) => primitive.rust_type(),
            Self::Enum(_) => "&str",
        }
    }
}

/// The primitive attribute types of OpenTelemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// `string`
    String,
    /// `int`
    Int,
    /// `double`
    Double,
    /// `boolean`
    Boolean,
    /// `string[]`
    StringArray,
    /// `int[]`
    IntArray,
    /// `double[]`
    DoubleArray,
    /// `boolean[]`
    BooleanArray,
}

impl Primitive {
    /// Every primitive type.
    pub const ALL: [Self; 8] = [
        Self::String,
        Self::Int,
        Self::Double,
        Self::Boolean,
        Self::StringArray,
        Self::IntArray,
        Self::DoubleArray,
        Self::BooleanArray,
    ];

    /// The name as the registry spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Double => "double",
            Self::Boolean => "boolean",
            Self::StringArray => "string[]",
            Self::IntArray => "int[]",
            Self::DoubleArray => "double[]",
            Self::BooleanArray => "boolean[]",
        }
    }

    /// Parses a registry type name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|primitive| primitive.name() == name)
    }

    /// The Rust type of a value of this type.
    pub fn rust_type(self) -> &'static str {
        match self {
            Self::String => "&str",
            Self::Int => "i64",
            Self::Double => "f64",
            Self::Boolean => "bool",
            Self::StringArray => "&[&str]",
            Self::IntArray => "&[i64]",
            Self::DoubleArray => "&[f64]",
            Self::BooleanArray => "&[bool]",
        }
    }

    /// Whether `value` is a value of this type.
    pub fn admits(self, value: &Value) -> bool {
        let element = match self {
            Self::String => return matches!(value, Value::String(_)),
            Self::Int => return matches!(value, Value::Int(_)),
            Self::Double => return matches!(value, Value::Double(_)),
            Self::Boolean => return matches!(value, Value::Bool(_)),
            Self::StringArray => Self::String,
            Self::IntArray => Self::Int,
            Self::DoubleArray => Self::Double,
            Self::BooleanArray => Self::Boolean,
        };
        match value {
            Value::Array(values) => values.iter().all(|value| element.admits(value)),
            _ => false,
        }
    }
}

/// One well-known value of an enum attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Identifier, turned into the Rust variant name.
    pub id: String,
    /// The value on the wire.
    pub value: String,
    /// One-sentence description.
    pub brief: String,
    /// Longer description.
    pub note: Option<String>,
    /// Stability.
    pub stability: Stability,
}

/// A group of the registry.
#[derive(Debug, Clone)]
pub struct Group {
    /// Unique id.
    pub id: String,
    /// What the group describes.
    pub kind: GroupKind,
    /// A human title.
    pub display_name: Option<String>,
    /// One-sentence description.
    pub brief: String,
    /// Longer description.
    pub note: Option<String>,
    /// The title of the rule the note states, if the note states one.
    pub rule: Option<String>,
    /// Stability (always set on spans, events and metrics).
    pub stability: Option<Stability>,
    /// Kind-specific fields.
    pub detail: GroupDetail,
    /// The attributes of the group, in registry order: the definitions of an attribute group,
    /// the references of any other group.
    pub attributes: Vec<GroupAttribute>,
}

/// The fields only one kind of group has.
#[derive(Debug, Clone)]
pub enum GroupDetail {
    /// An attribute group.
    AttributeGroup,
    /// A span group.
    Span {
        /// The span kind.
        kind: SpanKind,
        /// The span-name template.
        name: SpanName,
    },
    /// An event group.
    Event {
        /// The event name.
        name: String,
    },
    /// A metric group.
    Metric {
        /// The metric name.
        name: String,
        /// The instrument.
        instrument: Instrument,
        /// The unit.
        unit: String,
    },
}

/// An attribute as a group uses it.
#[derive(Debug, Clone)]
pub struct GroupAttribute {
    /// The attribute id; always has a definition in [`Model::attributes`].
    pub id: String,
    /// The requirement level, on references.
    pub requirement_level: Option<RequirementLevel>,
    /// A note that replaces the definition's note in this group.
    pub note: Option<String>,
}

/// A parsed span-name template.
#[derive(Debug, Clone)]
pub struct SpanName {
    /// The template as written, such as `{gen_ai.operation.name} {gen_ai.request.model}`.
    pub template: String,
    /// Its space-separated parts.
    pub parts: Vec<SpanNamePart>,
}

impl SpanName {
    /// The placeholders, in template order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|part| match part {
            SpanNamePart::Literal(_) => None,
            SpanNamePart::Placeholder(placeholder) => Some(placeholder),
        })
    }
}

/// One space-separated part of a span-name template.
#[derive(Debug, Clone)]
pub enum SpanNamePart {
    /// A fixed word, such as `retrieval`.
    Literal(String),
    /// An attribute value.
    Placeholder(Placeholder),
}

/// An `{attribute}` part of a span-name template.
#[derive(Debug, Clone)]
pub struct Placeholder {
    /// The attribute id.
    pub attribute: String,
    /// The Rust parameter name of the span-name helper.
    pub parameter: String,
}
