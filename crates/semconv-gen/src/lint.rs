//! Registry lints, and the resolution of a registry into the [`Model`] the renderers use.
//!
//! [`resolve`] reports every problem it finds, not just the first, so one run of the generator
//! shows everything to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{
    Attribute, AttributeType, Compat, Group as RawGroup, GroupKind, Registry, Value,
};
use crate::naming::{self, OWN_PREFIX};
use crate::resolved::{
    AttributeDef, Group, GroupAttribute, GroupDetail, Member, Model, Placeholder, Primitive,
    SpanName, SpanNamePart, ValueType,
};

/// OpenTelemetry namespaces closedloop reuses verbatim: any attribute under them may be defined.
pub const REUSED_NAMESPACES: &[&str] = &["gen_ai."];

/// Individual OpenTelemetry attributes closedloop reuses verbatim.
pub const REUSED_ATTRIBUTES: &[&str] = &[
    "error.type",
    "openinference.span.kind",
    "session.id",
    "user.id",
];

/// The marker for a list index in a compat key, such as `retrieval.documents.<i>.document.id`.
pub const INDEX_MARKER: &str = "<i>";

/// What a lint found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemKind {
    /// Two groups share an id.
    DuplicateGroupId,
    /// Two attribute definitions share an id.
    DuplicateAttributeId,
    /// A mandatory field is missing.
    MissingField,
    /// A field is present where it has no meaning.
    MisplacedField,
    /// An id is not lowercase dot-separated words.
    InvalidId,
    /// An attribute type is not one of the OpenTelemetry types.
    InvalidType,
    /// Two members of one enum share an id.
    DuplicateMemberId,
    /// Two members of one enum share a value.
    DuplicateMemberValue,
    /// An example value does not have the attribute's type.
    ExampleTypeMismatch,
    /// A `ref` names no attribute definition.
    UnresolvedRef,
    /// A group references the same attribute twice.
    DuplicateRef,
    /// An attribute is outside `closedloop.` and not an allowed OpenTelemetry name.
    ForeignNamespace,
    /// A compat key names an attribute that does not exist, or a different attribute.
    UnknownCompatTarget,
    /// A compat key is listed under two attributes.
    AmbiguousCompatKey,
    /// A compat key is malformed.
    InvalidCompatKey,
    /// A span-name template is malformed or names an attribute the span does not carry.
    InvalidSpanName,
    /// Two items would get the same Rust name.
    NameCollision,
}

/// One problem a lint found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file the problem is in.
    pub file: String,
    /// The group the problem is in.
    pub group: String,
    /// What is wrong, as a category.
    pub kind: ProblemKind,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: group `{}`: {}", self.file, self.group, self.message)
    }
}

/// Every problem of a registry that failed its lints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the registry has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Runs every lint and returns the problems, sorted; empty when the registry is sound.
pub fn lint(registry: &Registry) -> Vec<Problem> {
    match resolve(registry) {
        Ok(_) => Vec::new(),
        Err(Problems(problems)) => problems,
    }
}

/// Lints the registry and, when it is sound, resolves it into a [`Model`].
pub fn resolve(registry: &Registry) -> Result<Model, Problems> {
    let mut resolver = Resolver::default();
    resolver.run(registry);
    if resolver.problems.is_empty() {
        let mut attributes: Vec<AttributeDef> = resolver.definitions.into_values().collect();
        attributes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Model {
            attributes,
            groups: resolver.groups,
        })
    } else {
        let mut problems = resolver.problems;
        problems.sort();
        problems.dedup();
        Err(Problems(problems))
    }
}

#[derive(Default)]
struct Resolver {
    problems: Vec<Problem>,
    definitions: BTreeMap<String, AttributeDef>,
    /// Attribute ids that were defined, even if their definition was incomplete; a reference
    /// to one of these is not reported as unresolved.
    defined_ids: BTreeSet<String>,
    groups: Vec<Group>,
}

/// Where a problem is, for the report.
#[derive(Clone, Copy)]
struct Location<'a> {
    file: &'a str,
    group: &'a str,
}

impl Resolver {
    fn report(&mut self, at: Location<'_>, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem {
            file: at.file.to_owned(),
            group: at.group.to_owned(),
            kind,
            message: message.into(),
        });
    }

    fn run(&mut self, registry: &Registry) {
        let mut group_ids = BTreeSet::new();
        for file in &registry.files {
            for group in &file.groups {
                let at = Location {
                    file: &file.name,
                    group: &group.id,
                };
                if !group_ids.insert(group.id.clone()) {
                    self.report(
                        at,
                        ProblemKind::DuplicateGroupId,
                        format!("duplicate group id `{}`", group.id),
                    );
                }
                if group.kind == GroupKind::AttributeGroup {
                    for attribute in &group.attributes {
                        self.define(at, attribute);
                    }
                }
            }
        }
        // References and everything that needs the full set of definitions come second, so a
        // group may reference an attribute defined in a later file.
        for file in &registry.files {
            for group in &file.groups {
                let at = Location {
                    file: &file.name,
                    group: &group.id,
                };
                if let Some(group) = self.group(at, group) {
                    self.groups.push(group);
                }
            }
        }
        self.check_compat(registry);
        self.check_name_collisions(registry);
    }

    /// Checks an attribute definition and records it.
    fn define(&mut self, at: Location<'_>, attribute: &Attribute) {
        let Some(id) = &attribute.id else {
            let message = match &attribute.reference {
                Some(reference) => format!(
                    "attribute groups define attributes; `ref: {reference}` belongs in a span, event or metric group"
                ),
                None => "an attribute has neither `id` nor `ref`".to_owned(),
            };
            self.report(at, ProblemKind::MissingField, message);
            return;
        };
        if attribute.reference.is_some() {
            self.report(
                at,
                ProblemKind::MisplacedField,
                format!("attribute `{id}` has both `id` and `ref`"),
            );
        }
        if attribute.requirement_level.is_some() {
            self.report(
                at,
                ProblemKind::MisplacedField,
                format!("attribute `{id}` has a `requirement_level`, which belongs on a `ref`"),
            );
        }
        if !is_valid_id(id) {
            self.report(
                at,
                ProblemKind::InvalidId,
                format!("attribute id `{id}` is not lowercase dot-separated words"),
            );
        }
        if !id.starts_with(OWN_PREFIX)
            && !REUSED_NAMESPACES
                .iter()
                .any(|prefix| id.starts_with(prefix))
            && !REUSED_ATTRIBUTES.contains(&id.as_str())
        {
            self.report(
                at,
                ProblemKind::ForeignNamespace,
                format!(
                    "attribute `{id}` is neither under `{OWN_PREFIX}` nor a reused OpenTelemetry attribute ({})",
                    allowed_list()
                ),
            );
        }
        if !self.defined_ids.insert(id.clone()) {
            self.report(
                at,
                ProblemKind::DuplicateAttributeId,
                format!("duplicate attribute id `{id}`"),
            );
            return;
        }

        let brief = self.required(at, id, "brief", attribute.brief.as_ref());
        let stability = self.required(at, id, "stability", attribute.stability.as_ref());
        let examples = self.required(at, id, "examples", attribute.examples.as_ref());
        let value_type = self
            .required(at, id, "type", attribute.value_type.as_ref())
            .and_then(|value_type| self.value_type(at, id, value_type));
        if let Some(examples) = examples {
            if examples.values().is_empty() {
                self.report(
                    at,
                    ProblemKind::MissingField,
                    format!("attribute `{id}` has an empty `examples` list"),
                );
            }
            if let Some(value_type) = &value_type {
                for example in examples.values() {
                    if !admits(value_type, example) {
                        self.report(
                            at,
                            ProblemKind::ExampleTypeMismatch,
                            format!(
                                "example {example} of attribute `{id}` is not a `{}`{}",
                                value_type.name(),
                                if matches!(value_type, ValueType::Enum(_)) {
                                    " member value"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                }
            }
        }
        let (Some(brief), Some(stability), Some(examples), Some(value_type)) =
            (brief, stability, examples, value_type)
        else {
            return;
        };
        self.definitions.insert(
            id.clone(),
            AttributeDef {
                id: id.clone(),
                brief: clean(brief),
                note: attribute.note.as_deref().map(clean),
                value_type,
                examples: examples.values().to_vec(),
                stability: *stability,
                compat: attribute.annotations.compat.clone(),
                group: at.group.to_owned(),
            },
        );
    }

    fn required<'a, T>(
        &mut self,
        at: Location<'_>,
        id: &str,
        field: &str,
        value: Option<&'a T>,
    ) -> Option<&'a T> {
        if value.is_none() {
            self.report(
                at,
                ProblemKind::MissingField,
                format!("attribute `{id}` has no `{field}`"),
            );
        }
        value
    }

    fn value_type(
        &mut self,
        at: Location<'_>,
        id: &str,
        value_type: &AttributeType,
    ) -> Option<ValueType> {
        match value_type {
            AttributeType::Primitive(name) => match Primitive::from_name(name) {
                Some(primitive) => Some(ValueType::Primitive(primitive)),
                None => {
                    self.report(
                        at,
                        ProblemKind::InvalidType,
                        format!("attribute `{id}` has unknown type `{name}`"),
                    );
                    None
                }
            },
            AttributeType::Enum(enum_type) => {
                if enum_type.members.is_empty() {
                    self.report(
                        at,
                        ProblemKind::InvalidType,
                        format!("enum attribute `{id}` has no members"),
                    );
                    return None;
                }
                let mut ids = BTreeSet::new();
                let mut values = BTreeSet::new();
                let mut variants = BTreeSet::new();
                let mut members = Vec::new();
                for member in &enum_type.members {
                    if !is_valid_word(&member.id) {
                        self.report(
                            at,
                            ProblemKind::InvalidId,
                            format!(
                                "member id `{}` of `{id}` is not a lowercase word",
                                member.id
                            ),
                        );
                    }
                    if !ids.insert(member.id.as_str()) {
                        self.report(
                            at,
                            ProblemKind::DuplicateMemberId,
                            format!("enum `{id}` has two members with id `{}`", member.id),
                        );
                    } else if !variants.insert(naming::pascal_case(&member.id)) {
                        self.report(
                            at,
                            ProblemKind::NameCollision,
                            format!(
                                "member `{}` of `{id}` has the same Rust variant name as another member",
                                member.id
                            ),
                        );
                    }
                    if !values.insert(member.value.as_str()) {
                        self.report(
                            at,
                            ProblemKind::DuplicateMemberValue,
                            format!("enum `{id}` has two members with value `{}`", member.value),
                        );
                    }
                    if member.value.is_empty() {
                        self.report(
                            at,
                            ProblemKind::MissingField,
                            format!("member `{}` of `{id}` has an empty value", member.id),
                        );
                    }
                    let field = match (&member.brief, member.stability) {
                        (None, _) => Some("brief"),
                        (_, None) => Some("stability"),
                        _ => None,
                    };
                    if let Some(field) = field {
                        self.report(
                            at,
                            ProblemKind::MissingField,
                            format!("member `{}` of `{id}` has no `{field}`", member.id),
                        );
                    }
                    if let (Some(brief), Some(stability)) = (&member.brief, member.stability) {
                        members.push(Member {
                            id: member.id.clone(),
                            value: member.value.clone(),
                            brief: clean(brief),
                            note: member.note.as_deref().map(clean),
                            stability,
                        });
                    }
                }
                (members.len() == enum_type.members.len()).then_some(ValueType::Enum(members))
            }
        }
    }

    /// Checks a group and its references, and resolves it.
    fn group(&mut self, at: Location<'_>, group: &RawGroup) -> Option<Group> {
        let mut complete = true;
        let mut missing = |resolver: &mut Self, present: bool, field: &str| {
            if !present {
                resolver.report(
                    at,
                    ProblemKind::MissingField,
                    format!("group has no `{field}`"),
                );
                complete = false;
            }
        };
        missing(self, group.brief.is_some(), "brief");
        if group.kind != GroupKind::AttributeGroup {
            missing(self, group.stability.is_some(), "stability");
        }
        match group.kind {
            GroupKind::Span => {
                missing(self, group.span_kind.is_some(), "span_kind");
                missing(
                    self,
                    group.annotations.span_name.is_some(),
                    "annotations.span_name",
                );
            }
            GroupKind::Metric => {
                missing(self, group.metric_name.is_some(), "metric_name");
                missing(self, group.instrument.is_some(), "instrument");
                missing(self, group.unit.is_some(), "unit");
            }
            GroupKind::Event => missing(self, group.name.is_some(), "name"),
            GroupKind::AttributeGroup => {}
        }
        if group.annotations.rule.is_some() && group.note.is_none() {
            self.report(
                at,
                ProblemKind::MissingField,
                "group has an `annotations.rule` title but no `note` stating the rule",
            );
        }
        let misplaced = [
            ("span_kind", group.span_kind.is_some(), GroupKind::Span),
            (
                "annotations.span_name",
                group.annotations.span_name.is_some(),
                GroupKind::Span,
            ),
            (
                "metric_name",
                group.metric_name.is_some(),
                GroupKind::Metric,
            ),
            ("instrument", group.instrument.is_some(), GroupKind::Metric),
            ("unit", group.unit.is_some(), GroupKind::Metric),
            ("name", group.name.is_some(), GroupKind::Event),
        ];
        for (field, present, kind) in misplaced {
            if present && group.kind != kind {
                self.report(
                    at,
                    ProblemKind::MisplacedField,
                    format!("`{field}` has no meaning on a {:?} group", group.kind),
                );
            }
        }

        let attributes = if group.kind == GroupKind::AttributeGroup {
            let attributes: Vec<GroupAttribute> = group
                .attributes
                .iter()
                .filter_map(|attribute| attribute.id.as_ref())
                .map(|id| GroupAttribute {
                    id: id.clone(),
                    requirement_level: None,
                    note: None,
                })
                .collect();
            complete &= attributes
                .iter()
                .all(|attribute| self.definitions.contains_key(&attribute.id));
            attributes
        } else {
            self.references(at, group, &mut complete)
        };

        let detail = match group.kind {
            GroupKind::AttributeGroup => GroupDetail::AttributeGroup,
            GroupKind::Span => {
                let template = group.annotations.span_name.as_deref()?;
                let name = self.span_name(at, template, &attributes);
                GroupDetail::Span {
                    kind: group.span_kind?,
                    name: name?,
                }
            }
            GroupKind::Event => GroupDetail::Event {
                name: group.name.clone()?,
            },
            GroupKind::Metric => GroupDetail::Metric {
                name: group.metric_name.clone()?,
                instrument: group.instrument?,
                unit: group.unit.clone()?,
            },
        };
        complete.then(|| Group {
            id: group.id.clone(),
            kind: group.kind,
            display_name: group.display_name.clone(),
            brief: group.brief.as_deref().map(clean).unwrap_or_default(),
            note: group.note.as_deref().map(clean),
            rule: group.annotations.rule.as_deref().map(clean),
            stability: group.stability,
            detail,
            attributes,
        })
    }

    fn references(
        &mut self,
        at: Location<'_>,
        group: &RawGroup,
        complete: &mut bool,
    ) -> Vec<GroupAttribute> {
        let mut seen = BTreeSet::new();
        let mut attributes = Vec::new();
        for attribute in &group.attributes {
            let Some(reference) = &attribute.reference else {
                let id = attribute.id.as_deref().unwrap_or("?");
                self.report(
                    at,
                    ProblemKind::MisplacedField,
                    format!(
                        "attribute `{id}` is defined in a {:?} group; define attributes in an attribute group and `ref` them here",
                        group.kind
                    ),
                );
                *complete = false;
                continue;
            };
            let misplaced = [
                ("type", attribute.value_type.is_some()),
                ("examples", attribute.examples.is_some()),
                ("stability", attribute.stability.is_some()),
                ("annotations", !attribute.annotations.compat.is_empty()),
            ];
            for (field, present) in misplaced {
                if present {
                    self.report(
                        at,
                        ProblemKind::MisplacedField,
                        format!(
                            "`ref: {reference}` sets `{field}`, which only a definition may set"
                        ),
                    );
                }
            }
            if !self.defined_ids.contains(reference) {
                self.report(
                    at,
                    ProblemKind::UnresolvedRef,
                    format!("`ref: {reference}` names no attribute definition"),
                );
                *complete = false;
                continue;
            }
            if !seen.insert(reference.as_str()) {
                self.report(
                    at,
                    ProblemKind::DuplicateRef,
                    format!("`ref: {reference}` appears twice"),
                );
            }
            if attribute.requirement_level.is_none() {
                self.report(
                    at,
                    ProblemKind::MissingField,
                    format!("`ref: {reference}` has no `requirement_level`"),
                );
            }
            *complete &= self.definitions.contains_key(reference);
            attributes.push(GroupAttribute {
                id: reference.clone(),
                requirement_level: attribute.requirement_level.clone(),
                note: attribute.note.as_deref().map(clean),
            });
        }
        attributes
    }

    fn span_name(
        &mut self,
        at: Location<'_>,
        template: &str,
        attributes: &[GroupAttribute],
    ) -> Option<SpanName> {
        let problem = |resolver: &mut Self, message: String| {
            resolver.report(
                at,
                ProblemKind::InvalidSpanName,
                format!("span name `{template}`: {message}"),
            );
        };
        let mut parts = Vec::new();
        let mut parameters = BTreeSet::new();
        let mut valid = !template.is_empty();
        if template.is_empty() {
            problem(self, "is empty".to_owned());
        }
        for word in template.split(' ') {
            if let Some(attribute) = word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                let parameter = naming::parameter_name(attribute);
                if !attributes.iter().any(|a| a.id == attribute) {
                    problem(
                        self,
                        format!("`{attribute}` is not an attribute of the span"),
                    );
                    valid = false;
                } else if let Some(definition) = self.definitions.get(attribute) {
                    if !matches!(
                        definition.value_type,
                        ValueType::Enum(_) | ValueType::Primitive(Primitive::String)
                    ) {
                        problem(
                            self,
                            format!("`{attribute}` is not a string or enum attribute"),
                        );
                        valid = false;
                    }
                }
                if naming::is_rust_keyword(&parameter) || !parameters.insert(parameter.clone()) {
                    problem(
                        self,
                        format!("`{attribute}` gives the parameter name `{parameter}`, which is a Rust keyword or is used twice"),
                    );
                    valid = false;
                }
                parts.push(SpanNamePart::Placeholder(Placeholder {
                    attribute: attribute.to_owned(),
                    parameter,
                }));
            } else if word.is_empty() || word.contains(['{', '}']) {
                problem(
                    self,
                    "parts must be single-space-separated words or `{attribute}` placeholders"
                        .to_owned(),
                );
                valid = false;
            } else {
                parts.push(SpanNamePart::Literal(word.to_owned()));
            }
        }
        valid.then(|| SpanName {
            template: template.to_owned(),
            parts,
        })
    }

    fn check_compat(&mut self, registry: &Registry) {
        let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut first_seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for file in &registry.files {
            for group in &file.groups {
                for attribute in &group.attributes {
                    let Some(id) = attribute.id.as_deref() else {
                        continue;
                    };
                    let Compat {
                        openinference,
                        openllmetry,
                    } = &attribute.annotations.compat;
                    for key in openinference.iter().chain(openllmetry) {
                        owners.entry(key).or_default().insert(id);
                        first_seen.entry(key).or_insert((&file.name, &group.id));
                        let at = Location {
                            file: &file.name,
                            group: &group.id,
                        };
                        if let Some(message) = compat_key_problem(key) {
                            self.report(
                                at,
                                ProblemKind::InvalidCompatKey,
                                format!("compat key `{key}` of `{id}` {message}"),
                            );
                        }
                        if key != id && self.defined_ids.contains(key.as_str()) {
                            self.report(
                                at,
                                ProblemKind::UnknownCompatTarget,
                                format!(
                                    "compat key `{key}` of `{id}` is the id of a different attribute"
                                ),
                            );
                        } else if key.starts_with(OWN_PREFIX) && key != id {
                            self.report(
                                at,
                                ProblemKind::UnknownCompatTarget,
                                format!(
                                    "compat key `{key}` of `{id}` names a `{OWN_PREFIX}` attribute that does not exist"
                                ),
                            );
                        }
                    }
                }
            }
        }
        for (key, ids) in owners {
            if ids.len() > 1 {
                let (file, group) = first_seen[key];
                let ids: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
                self.report(
                    Location { file, group },
                    ProblemKind::AmbiguousCompatKey,
                    format!(
                        "compat key `{key}` is listed under several attributes: {}",
                        ids.join(", ")
                    ),
                );
            }
        }
    }

    /// Checks that no two attributes, enums or metrics get the same Rust name.
    fn check_name_collisions(&mut self, registry: &Registry) {
        let mut constants: BTreeMap<String, String> = BTreeMap::new();
        let mut enums: BTreeMap<String, String> = BTreeMap::new();
        let mut metrics: BTreeMap<String, String> = BTreeMap::new();
        let mut spans: BTreeMap<String, String> = BTreeMap::new();
        for file in &registry.files {
            for group in &file.groups {
                let at = Location {
                    file: &file.name,
                    group: &group.id,
                };
                let claim = |resolver: &mut Self,
                             names: &mut BTreeMap<String, String>,
                             name: String,
                             owner: &str| {
                    if let Some(other) = names.get(&name) {
                        if other != owner {
                            resolver.report(
                                at,
                                ProblemKind::NameCollision,
                                format!("`{owner}` and `{other}` both become `{name}` in Rust"),
                            );
                        }
                    } else {
                        names.insert(name, owner.to_owned());
                    }
                };
                for attribute in &group.attributes {
                    let Some(id) = attribute.id.as_deref() else {
                        continue;
                    };
                    claim(self, &mut constants, naming::const_name(id), id);
                    if matches!(attribute.value_type, Some(AttributeType::Enum(_))) {
                        claim(self, &mut enums, naming::enum_name(id), id);
                    }
                }
                if let Some(name) = &group.metric_name {
                    claim(self, &mut metrics, naming::const_name(name), name);
                    let unit = naming::const_name(name) + "_UNIT";
                    claim(self, &mut metrics, unit, &format!("{name} (unit)"));
                }
                if group.kind == GroupKind::Span {
                    let function = naming::span_function_name(&group.id);
                    claim(self, &mut spans, function, &group.id);
                }
            }
        }
    }
}

fn admits(value_type: &ValueType, value: &Value) -> bool {
    match value_type {
        ValueType::Primitive(primitive) => primitive.admits(value),
        ValueType::Enum(members) => match value {
            Value::String(value) => members.iter().any(|member| &member.value == value),
            _ => false,
        },
    }
}

fn allowed_list() -> String {
    let namespaces = REUSED_NAMESPACES
        .iter()
        .map(|prefix| format!("`{prefix}*`"));
    let attributes = REUSED_ATTRIBUTES.iter().map(|id| format!("`{id}`"));
    namespaces.chain(attributes).collect::<Vec<_>>().join(", ")
}

/// Whether `id` is lowercase words separated by single dots, with at least two words.
fn is_valid_id(id: &str) -> bool {
    let mut words = 0;
    for word in id.split('.') {
        if !is_valid_word(word) {
            return false;
        }
        words += 1;
    }
    words >= 2
}

/// Whether `word` is a lowercase ASCII letter followed by lowercase letters, digits and `_`.
fn is_valid_word(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a compat key is malformed, if it is.
fn compat_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Some("is empty or contains whitespace");
    }
    let markers = key.matches(INDEX_MARKER).count();
    if markers > 1 {
        return Some("has more than one `<i>` index marker");
    }
    if key.split('.').any(|segment| segment.is_empty()) {
        return Some("has an empty segment");
    }
    if markers == 1 && !key.split('.').any(|segment| segment == INDEX_MARKER) {
        return Some("uses `<i>` inside a segment; it must be a whole segment");
    }
    if key.replace(INDEX_MARKER, "").contains(['<', '>', '{', '}']) {
        return Some("contains a placeholder other than `<i>`");
    }
    None
}

/// Trims a YAML text and joins its lines (folded scalars keep a trailing newline).
fn clean(text: &str) -> String {
    text.trim().to_owned()
}
