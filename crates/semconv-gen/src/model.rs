//! The registry as written in YAML: weaver's "definition v1" format, the subset closedloop uses.
//!
//! These types mirror the files field for field and reject fields they do not know, so a typo
//! in a key is a parse error rather than a silently ignored line. Fields that the format makes
//! mandatory but that a human can forget (`brief`, `type`, `stability`, `examples`) are
//! optional here so that [`mod@crate::lint`] can report every missing one at once, with its
//! location, instead of stopping at the first.

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Deserialize;

/// A registry: every YAML file of a model directory, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// The parsed files, sorted by name.
    pub files: Vec<RegistryFile>,
}

/// One YAML file of the registry.
#[derive(Debug, Clone)]
pub struct RegistryFile {
    /// The file name, used in lint messages.
    pub name: String,
    /// The groups the file defines, in file order.
    pub groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    groups: Vec<Group>,
}

impl Registry {
    /// Reads every `*.yaml` file of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut sources = Vec::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the registry directory {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                sources.push((name, text));
            }
        }
        Self::from_sources(sources)
    }

    /// Parses a registry from `(file name, YAML text)` pairs.
    pub fn from_sources<N, T>(sources: impl IntoIterator<Item = (N, T)>) -> Result<Self>
    where
        N: Into<String>,
        T: AsRef<str>,
    {
        let mut files = Vec::new();
        for (name, text) in sources {
            let name = name.into();
            let contents: FileContents =
                serde_norway::from_str(text.as_ref()).with_context(|| format!("parsing {name}"))?;
            files.push(RegistryFile {
                name,
                groups: contents.groups,
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { files })
    }
}

/// A group: a set of attribute definitions, a span, an event or a metric.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique id, such as `registry.closedloop.feedback` or `span.closedloop.generation`.
    pub id: String,
    /// What the group describes.
    #[serde(rename = "type")]
    pub kind: GroupKind,
    /// A human title for the group.
    pub display_name: Option<String>,
    /// One-sentence description.
    pub brief: Option<String>,
    /// Longer description.
    pub note: Option<String>,
    /// Stability of the group (spans, events and metrics).
    pub stability: Option<Stability>,
    /// The span kind (span groups).
    pub span_kind: Option<SpanKind>,
    /// The metric name (metric groups).
    pub metric_name: Option<String>,
    /// The instrument (metric groups).
    pub instrument: Option<Instrument>,
    /// The unit, in UCUM with `{annotation}` counts (metric groups).
    pub unit: Option<String>,
    /// The event name (event groups).
    pub name: Option<String>,
    /// Generator-specific annotations.
    #[serde(default)]
    pub annotations: GroupAnnotations,
    /// Attribute definitions or references.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// The kind of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A set of attribute definitions.
    AttributeGroup,
    /// A span and the attributes it carries.
    Span,
    /// An event and the attributes it carries.
    Event,
    /// A metric and the attributes it carries.
    Metric,
}

/// Annotations on a group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupAnnotations {
    /// The span-name template of a span group, such as
    /// `{gen_ai.operation.name} {gen_ai.request.model}`: literal words and `{attribute}`
    /// placeholders separated by single spaces.
    pub span_name: Option<String>,
    /// A title under which the docs show the group's note as one of the conventions' rules.
    pub rule: Option<String>,
}

/// Stability of a group, attribute or enum member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// Still changing; may be renamed or removed.
    Development,
    /// Moving towards stable.
    ReleaseCandidate,
    /// Will not change in a breaking way.
    Stable,
    /// Scheduled for removal.
    Deprecated,
}

impl Stability {
    /// The name as the OpenTelemetry docs print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "Development",
            Self::ReleaseCandidate => "Release Candidate",
            Self::Stable => "Stable",
            Self::Deprecated => "Deprecated",
        }
    }
}

/// The OpenTelemetry span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// A call to a remote service.
    Client,
    /// The handling of a remote call.
    Server,
    /// An operation inside one process.
    Internal,
    /// The creation of a message.
    Producer,
    /// The handling of a message.
    Consumer,
}

impl SpanKind {
    /// Every span kind, in the order of the OpenTelemetry specification.
    pub const ALL: [Self; 5] = [
        Self::Internal,
        Self::Server,
        Self::Client,
        Self::Producer,
        Self::Consumer,
    ];

    /// The lowercase name, as the YAML spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Internal => "internal",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// The variant name in Rust.
    pub fn variant(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::Server => "Server",
            Self::Internal => "Internal",
            Self::Producer => "Producer",
            Self::Consumer => "Consumer",
        }
    }
}

/// A metric instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Instrument {
    /// A monotonic sum.
    Counter,
    /// A sum that goes up and down.
    Updowncounter,
    /// A sampled current value.
    Gauge,
    /// A distribution.
    Histogram,
}

impl Instrument {
    /// The name as the OpenTelemetry docs print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "Counter",
            Self::Updowncounter => "UpDownCounter",
            Self::Gauge => "Gauge",
            Self::Histogram => "Histogram",
        }
    }
}

/// An attribute entry of a group: a definition (`id`) or a reference (`ref`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// The id of a new attribute.
    pub id: Option<String>,
    /// The id of an attribute defined elsewhere.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// The value type.
    #[serde(rename = "type")]
    pub value_type: Option<AttributeType>,
    /// One-sentence description.
    pub brief: Option<String>,
    /// Longer description. On a reference, replaces the definition's note in that group.
    pub note: Option<String>,
    /// Example values.
    pub examples: Option<Examples>,
    /// Stability.
    pub stability: Option<Stability>,
    /// Requirement level, on references in span, event and metric groups.
    pub requirement_level: Option<RequirementLevel>,
    /// Generator-specific annotations.
    #[serde(default)]
    pub annotations: AttributeAnnotations,
}

/// Annotations on an attribute.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeAnnotations {
    /// Equivalent keys in other conventions.
    #[serde(default)]
    pub compat: Compat,
}

/// Keys of other conventions that carry the same information. `<i>` stands for a list index.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compat {
    /// OpenInference (Arize Phoenix) keys.
    #[serde(default)]
    pub openinference: Vec<String>,
    /// OpenLLMetry (Traceloop) keys.
    #[serde(default)]
    pub openllmetry: Vec<String>,
}

impl Compat {
    /// Whether no equivalent is listed.
    pub fn is_empty(&self) -> bool {
        self.openinference.is_empty() && self.openllmetry.is_empty()
    }
}

/// The value type of an attribute: a primitive name or an enum.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AttributeType {
    /// `string`, `int`, `double`, `boolean` or one of those followed by `[]`.
    Primitive(String),
    /// An enum of string members.
    Enum(EnumType),
}

/// An enum attribute type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumType {
    /// The well-known values.
    pub members: Vec<EnumMember>,
}

/// One well-known value of an enum attribute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumMember {
    /// Identifier, turned into the Rust variant name.
    pub id: String,
    /// The value on the wire.
    pub value: String,
    /// One-sentence description.
    pub brief: Option<String>,
    /// Longer description.
    pub note: Option<String>,
    /// Stability.
    pub stability: Option<Stability>,
}

/// The `examples` of an attribute: one value or a list of values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Examples {
    /// A list of example values.
    Many(Vec<Value>),
    /// A single example value.
    One(Value),
}

impl Examples {
    /// The example values.
    pub fn values(&self) -> &[Value] {
        match self {
            Self::Many(values) => values,
            Self::One(value) => std::slice::from_ref(value),
        }
    }
}

/// An example value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// A string.
    String(String),
    /// An array of values.
    Array(Vec<Value>),
}

impl Value {
    /// Formats the value as the OpenTelemetry docs show examples: strings bare unless they
    /// need escaping, arrays as JSON-like lists.
    pub fn to_markdown(&self) -> String {
        match self {
            Self::String(value)
                if !value.contains(char::is_control)
                    && value.trim() == value
                    && !value.is_empty() =>
            {
                value.clone()
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Value {
    /// Formats the value as a Rust (and JSON) literal: strings quoted and escaped, doubles with
    /// a decimal point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(value) => write!(f, "{value}"),
            Self::Int(value) => write!(f, "{value}"),
            Self::Double(value) => write!(f, "{value:?}"),
            Self::String(value) => write!(f, "{value:?}"),
            Self::Array(values) => {
                f.write_str("[")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// How strongly a group asks for an attribute.
///
/// In YAML, a plain word (`required`, `recommended`, `opt_in`) or a map
/// `conditionally_required: <condition>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawRequirementLevel")]
pub enum RequirementLevel {
    /// Always set.
    Required,
    /// Set when the condition holds.
    ConditionallyRequired(String),
    /// Set by default when available.
    Recommended,
    /// Set only when the user opts in.
    OptIn,
}

impl fmt::Display for RequirementLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Required => f.write_str("Required"),
            Self::ConditionallyRequired(_) => f.write_str("Conditionally Required"),
            Self::Recommended => f.write_str("Recommended"),
            Self::OptIn => f.write_str("Opt-In"),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRequirementLevel {
    Plain(PlainRequirementLevel),
    Conditional(ConditionalRequirementLevel),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PlainRequirementLevel {
    Required,
    Recommended,
    OptIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionalRequirementLevel {
    conditionally_required: String,
}

impl From<RawRequirementLevel> for RequirementLevel {
    fn from(raw: RawRequirementLevel) -> Self {
        match raw {
            RawRequirementLevel::Plain(PlainRequirementLevel::Required) => Self::Required,
            RawRequirementLevel::Plain(PlainRequirementLevel::Recommended) => Self::Recommended,
            RawRequirementLevel::Plain(PlainRequirementLevel::OptIn) => Self::OptIn,
            RawRequirementLevel::Conditional(conditional) => {
                Self::ConditionallyRequired(conditional.conditionally_required.trim().to_owned())
            }
        }
    }
}
