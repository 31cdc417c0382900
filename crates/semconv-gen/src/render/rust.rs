//! The Rust modules of closedloop-semconv, emitted already formatted the way rustfmt formats them.

use std::collections::BTreeMap;

use super::{code, paragraphs, Text, HEADER, MAX_WIDTH};
use crate::lint::INDEX_MARKER;
use crate::model::{GroupKind, SpanKind, Value};
use crate::naming;
use crate::resolved::{AttributeDef, GroupDetail, Member, Model, SpanNamePart, ValueType};

/// `crates/semconv/src/attribute.rs`: a constant per attribute, an enum per enum attribute.
pub fn attribute_rs(model: &Model) -> String {
    let mut out = header(
        "Attribute keys, and a typed enum for every attribute with well-known values.\n\n\
         Every constant is an attribute key from the closedloop registry. `gen_ai.*`,\n\
         `session.id`, `user.id` and `error.type` are OpenTelemetry names reused verbatim;\n\
         everything closedloop adds lives under `closedloop.`.",
    );
    out.line("use std::fmt;");
    out.line("use std::str::FromStr;");
    out.blank();
    out.line("use crate::UnknownValue;");
    for attribute in &model.attributes {
        out.blank();
        out.doc("", "///", &attribute_doc(attribute));
        out.line(const_item(
            "",
            &naming::const_name(&attribute.id),
            &format!("{:?}", attribute.id),
        ));
    }
    for attribute in &model.attributes {
        if let ValueType::Enum(members) = &attribute.value_type {
            enum_item(&mut out, attribute, members);
        }
    }
    out.finish()
}

fn attribute_doc(attribute: &AttributeDef) -> String {
    let examples: Vec<String> = attribute
        .examples
        .iter()
        .map(|example| format!("- {}", code(&example.to_string())))
        .collect();
    let mut details = vec![
        format!(
            "- Stability: {}",
            attribute.stability.as_str().to_lowercase()
        ),
        match &attribute.value_type {
            ValueType::Primitive(primitive) => format!("- Type: {}", code(primitive.name())),
            ValueType::Enum(_) => format!(
                "- Type: `string`, with well-known values in [`{}`]",
                naming::enum_name(&attribute.id)
            ),
        },
    ];
    let compat = &attribute.compat;
    if !compat.openinference.is_empty() {
        details.push(format!(
            "- OpenInference: {}",
            code_list(&compat.openinference)
        ));
    }
    if !compat.openllmetry.is_empty() {
        details.push(format!("- OpenLLMetry: {}", code_list(&compat.openllmetry)));
    }
    let examples = format!("# Examples\n\n{}", examples.join("\n"));
    let details = format!("# Details\n\n{}", details.join("\n"));
    paragraphs([
        attribute.brief.as_str(),
        attribute.note.as_deref().unwrap_or_default(),
        &examples,
        &details,
    ])
}

fn enum_item(out: &mut Text, attribute: &AttributeDef, members: &[Member]) {
    let name = naming::enum_name(&attribute.id);
    let constant = naming::const_name(&attribute.id);
    out.blank();
    out.doc(
        "",
        "///",
        &format!(
            "Well-known values of [`{constant}`] (`{}`).\n\n{}\n\n\
             Converts to and from the attribute value with [`{name}::as_str`] and\n\
             [`str::parse`].",
            attribute.id, attribute.brief
        ),
    );
    out.line("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]");
    out.line("#[non_exhaustive]");
    out.line(format!("pub enum {name} {{"));
    for member in members {
        let variant = naming::pascal_case(&member.id);
        let mut doc = paragraphs([
            member.brief.as_str(),
            member.note.as_deref().unwrap_or_default(),
        ]);
        doc.push_str(&format!("\n\nValue: {}.", code(&member.value)));
        out.doc("    ", "///", &doc);
        out.line(format!("    {variant},"));
    }
    out.line("}");
    out.blank();

    out.line(format!("impl {name} {{"));
    out.line("    /// The attribute these values belong to.");
    out.line(format!(
        "    pub const ATTRIBUTE: &'static str = {constant};"
    ));
    out.blank();
    out.line("    /// Every well-known value, in registry order.");
    let variants: Vec<String> = members
        .iter()
        .map(|member| format!("Self::{}", naming::pascal_case(&member.id)))
        .collect();
    array_item(
        out,
        "    pub const ALL: &'static [Self] = &",
        &variants,
        ";",
    );
    out.blank();
    out.line("    /// The attribute value.");
    out.line("    pub const fn as_str(self) -> &'static str {");
    out.line("        match self {");
    for member in members {
        out.line(format!(
            "            Self::{} => {:?},",
            naming::pascal_case(&member.id),
            member.value
        ));
    }
    out.line("        }");
    out.line("    }");
    out.line("}");
    out.blank();

    out.line(format!("impl fmt::Display for {name} {{"));
    out.line("    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {");
    out.line("        f.write_str(self.as_str())");
    out.line("    }");
    out.line("}");
    out.blank();

    out.line(format!("impl FromStr for {name} {{"));
    out.line("    type Err = UnknownValue;");
    out.blank();
    out.line("    fn from_str(value: &str) -> Result<Self, Self::Err> {");
    out.line("        match value {");
    for member in members {
        out.line(format!(
            "            {:?} => Ok(Self::{}),",
            member.value,
            naming::pascal_case(&member.id)
        ));
    }
    out.line("            _ => Err(UnknownValue::new(Self::ATTRIBUTE, value)),");
    out.line("        }");
    out.line("    }");
    out.line("}");
}

/// `crates/semconv/src/metric.rs`: a name and a unit constant per metric, sorted by name.
pub fn metric_rs(model: &Model) -> String {
    let mut out = header(
        "Names and units of the metrics the closedloop receiver exports about itself.\n\n\
         Each metric has a name constant and a `_UNIT` constant; the attributes it carries are\n\
         keys from [`crate::attribute`].",
    );
    let mut metrics: Vec<_> = model
        .groups_of(GroupKind::Metric)
        .filter_map(|group| match &group.detail {
            GroupDetail::Metric {
                name,
                instrument,
                unit,
            } => Some((name, instrument, unit, group)),
            _ => None,
        })
        .collect();
    metrics.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, instrument, unit, group)) in metrics.into_iter().enumerate() {
        let constant = naming::const_name(name);
        let attributes: Vec<String> = group
            .attributes
            .iter()
            .map(|attribute| {
                let level = attribute
                    .requirement_level
                    .as_ref()
                    .map(|level| format!(" ({})", level.to_string().to_lowercase()))
                    .unwrap_or_default();
                format!(
                    "- [`{}`](crate::attribute::{}){level}",
                    attribute.id,
                    naming::const_name(&attribute.id)
                )
            })
            .collect();
        let attributes = if attributes.is_empty() {
            "No attributes.".to_owned()
        } else {
            format!("Attributes:\n\n{}", attributes.join("\n"))
        };
        let stability = group
            .stability
            .map(|stability| stability.as_str().to_lowercase())
            .unwrap_or_default();
        let details = format!(
            "- Instrument: {}\n- Unit: {} ([`{constant}_UNIT`])\n- Stability: {stability}",
            instrument.as_str(),
            code(unit)
        );
        if i > 0 {
            out.blank();
        }
        out.doc(
            "",
            "///",
            &paragraphs([
                group.brief.as_str(),
                group.note.as_deref().unwrap_or_default(),
                &details,
                &attributes,
            ]),
        );
        out.line(const_item("", &constant, &format!("{name:?}")));
        out.blank();
        out.line(format!("/// The unit of [`{constant}`]."));
        out.line(const_item(
            "",
            &format!("{constant}_UNIT"),
            &format!("{unit:?}"),
        ));
    }
    out.finish()
}

/// `crates/semconv/src/span.rs`: span kinds, name templates and span-name helpers.
pub fn span_rs(model: &Model) -> String {
    let mut out = header(
        "Span names and kinds of the spans closedloop writes and reads.\n\n\
         Each span has a name helper built from its name template, a `_NAME_TEMPLATE` constant and\n\
         a `_SPAN_KIND` constant. The helpers drop empty parts, so a span whose model is not known\n\
         is still named after its operation.",
    );
    out.line("/// An OpenTelemetry span kind, as the conventions ask for it.");
    out.line("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]");
    out.line("pub enum SpanKind {");
    for (i, kind) in SpanKind::ALL.into_iter().enumerate() {
        if i > 0 {
            out.blank();
        }
        out.line(format!(
            "    /// `{}`: {}",
            kind.as_str().to_uppercase(),
            span_kind_brief(kind)
        ));
        out.line(format!("    {},", kind.variant()));
    }
    out.line("}");
    out.blank();
    out.line("impl SpanKind {");
    out.line("    /// The lowercase name, as the conventions spell it.");
    out.line("    pub const fn as_str(self) -> &'static str {");
    out.line("        match self {");
    for kind in SpanKind::ALL {
        out.line(format!(
            "            Self::{} => {:?},",
            kind.variant(),
            kind.as_str()
        ));
    }
    out.line("        }");
    out.line("    }");
    out.line("}");

    for group in model.groups_of(GroupKind::Span) {
        let GroupDetail::Span { kind, name } = &group.detail else {
            continue;
        };
        let prefix = naming::span_const_prefix(&group.id);
        let function = naming::span_function_name(&group.id);
        out.blank();
        let noun = function.trim_end_matches("_name").replace('_', " ");
        out.line(format!(
            "/// The span kind of a {noun} span ([`{function}`])."
        ));
        out.line(format!(
            "pub const {prefix}_SPAN_KIND: SpanKind = SpanKind::{};",
            kind.variant()
        ));
        out.blank();
        out.line(format!("/// The name template of a {noun} span."));
        out.line(const_item(
            "",
            &format!("{prefix}_NAME_TEMPLATE"),
            &format!("{:?}", name.template),
        ));
        out.blank();

        let placeholders: Vec<_> = name.placeholders().collect();
        let parameters: Vec<String> = placeholders
            .iter()
            .map(|placeholder| {
                format!(
                    "[`{}`](crate::attribute::{})",
                    placeholder.attribute,
                    naming::const_name(&placeholder.attribute)
                )
            })
            .collect();
        let example_args: Vec<String> = placeholders
            .iter()
            .map(|placeholder| first_string_example(model, &placeholder.attribute))
            .collect();
        let example_name = render_name(&name.parts, &example_args);
        let mut sparse_args = example_args.clone();
        let mut examples = format!(
            "assert_eq!({function}({}), {example_name:?});",
            quoted_args(&example_args)
        );
        if sparse_args.len() > 1 {
            if let Some(last) = sparse_args.last_mut() {
                last.clear();
            }
            examples.push_str(&format!(
                "\nassert_eq!({function}({}), {:?});",
                quoted_args(&sparse_args),
                render_name(&name.parts, &sparse_args)
            ));
        } else if let Some(only) = sparse_args.first_mut() {
            only.clear();
            examples.push_str(&format!(
                "\nassert_eq!({function}({}), {:?});",
                quoted_args(&sparse_args),
                render_name(&name.parts, &sparse_args)
            ));
        }
        let kind_line = format!(
            "Span kind: {} ([`{prefix}_SPAN_KIND`]). Name template: {}.",
            kind.as_str().to_uppercase(),
            code(&name.template)
        );
        let parameters_line = if parameters.is_empty() {
            String::new()
        } else {
            format!(
                "The parts are the values of {}, in that order; empty parts are dropped.",
                parameters.join(", ")
            )
        };
        let doc = paragraphs([
            &format!(
                "The name of a {} span: {}",
                function.trim_end_matches("_name").replace('_', " "),
                lower_first(&group.brief)
            ),
            group.note.as_deref().unwrap_or_default(),
            &kind_line,
            &parameters_line,
            &format!(
                "# Examples\n\n```\nuse closedloop_semconv::span::{function};\n\n{examples}\n```"
            ),
        ]);
        out.doc("", "///", &doc);
        let params: Vec<String> = placeholders
            .iter()
            .map(|placeholder| format!("{}: &str", placeholder.parameter))
            .collect();
        let signature = format!("pub fn {function}({}) -> String {{", params.join(", "));
        if signature.len() <= MAX_WIDTH {
            out.line(signature);
        } else {
            out.line(format!("pub fn {function}("));
            for param in &params {
                out.line(format!("    {param},"));
            }
            out.line(") -> String {");
        }
        let parts: Vec<String> = name
            .parts
            .iter()
            .map(|part| match part {
                SpanNamePart::Literal(word) => format!("{word:?}"),
                SpanNamePart::Placeholder(placeholder) => placeholder.parameter.clone(),
            })
            .collect();
        array_item(&mut out, "    join_non_empty(&", &parts, ")");
        out.line("}");
    }

    out.blank();
    out.line("/// Joins the non-empty parts of a span name with single spaces.");
    out.line("fn join_non_empty(parts: &[&str]) -> String {");
    out.line("    let mut name = String::new();");
    out.line("    for part in parts.iter().filter(|part| !part.is_empty()) {");
    out.line("        if !name.is_empty() {");
    out.line("            name.push(' ');");
    out.line("        }");
    out.line("        name.push_str(part);");
    out.line("    }");
    out.line("    name");
    out.line("}");
    out.finish()
}

fn span_kind_brief(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "an operation inside one process.",
        SpanKind::Server => "the handling of a remote call.",
        SpanKind::Client => "a call to a remote service, such as a model provider or an index.",
        SpanKind::Producer => "the creation of a message for later processing.",
        SpanKind::Consumer => "the processing of a message from a producer.",
    }
}

fn first_string_example(model: &Model, attribute: &str) -> String {
    model
        .attribute(attribute)
        .and_then(|attribute| {
            attribute.examples.iter().find_map(|example| match example {
                Value::String(value) => Some(value.clone()),
                _ => None,
            })
        })
        .unwrap_or_default()
}

fn render_name(parts: &[SpanNamePart], args: &[String]) -> String {
    let mut args = args.iter();
    parts
        .iter()
        .filter_map(|part| match part {
            SpanNamePart::Literal(word) => Some(word.as_str()),
            SpanNamePart::Placeholder(_) => args.next().map(String::as_str),
        })
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn quoted_args(args: &[String]) -> String {
    args.iter()
        .map(|arg| format!("{arg:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// `crates/semconv/src/compat.rs`: the OpenInference and OpenLLMetry equivalents.
pub fn compat_rs(model: &Model) -> String {
    let mut out = header(
        "Equivalent keys in OpenInference and OpenLLMetry, and the reverse lookup the receiver\n\
         uses to read spans written with those conventions.\n\n\
         A key such as `retrieval.documents.3.document.id` carries a list index where the\n\
         registry writes `<i>`; [`match_foreign`] returns that index with the attribute.",
    );
    out.line("use crate::attribute;");
    out.blank();
    out.line("/// The keys of other conventions that carry the same information as one attribute.");
    out.line("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]");
    out.line("pub struct Equivalents {");
    out.line("    /// The attribute key, one of the [`crate::attribute`] constants.");
    out.line("    pub attribute: &'static str,");
    out.line("    /// OpenInference keys, preferred first; `<i>` marks a list index.");
    out.line("    pub openinference: &'static [&'static str],");
    out.line("    /// OpenLLMetry (Traceloop) keys, preferred first; `<i>` marks a list index.");
    out.line("    pub openllmetry: &'static [&'static str],");
    out.line("}");
    out.blank();
    out.line(
        "/// An attribute a foreign key maps to, with the list index the key carried, if any.",
    );
    out.line("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]");
    out.line("pub struct ForeignMatch {");
    out.line("    /// The attribute key, one of the [`crate::attribute`] constants.");
    out.line("    pub attribute: &'static str,");
    out.line("    /// The list index, for keys the registry writes with `<i>`.");
    out.line("    pub index: Option<usize>,");
    out.line("}");
    out.blank();

    let with_compat: Vec<&AttributeDef> = model
        .attributes
        .iter()
        .filter(|attribute| !attribute.compat.is_empty())
        .collect();
    out.line("/// Every attribute that has equivalents, sorted by attribute.");
    out.line("pub const EQUIVALENTS: &[Equivalents] = &[");
    for attribute in &with_compat {
        out.line("    Equivalents {");
        out.line(format!(
            "        attribute: attribute::{},",
            naming::const_name(&attribute.id)
        ));
        let quoted = |keys: &[String]| {
            keys.iter()
                .map(|key| format!("{key:?}"))
                .collect::<Vec<_>>()
        };
        array_item(
            &mut out,
            "        openinference: &",
            &quoted(&attribute.compat.openinference),
            ",",
        );
        array_item(
            &mut out,
            "        openllmetry: &",
            &quoted(&attribute.compat.openllmetry),
            ",",
        );
        out.line("    },");
    }
    out.line("];");
    out.blank();

    let mut exact = BTreeMap::new();
    let mut indexed = BTreeMap::new();
    for attribute in &with_compat {
        let compat = &attribute.compat;
        for key in compat.openinference.iter().chain(&compat.openllmetry) {
            let constant = format!("attribute::{}", naming::const_name(&attribute.id));
            match key.split_once(INDEX_MARKER) {
                Some((prefix, suffix)) => {
                    indexed.insert((prefix.to_owned(), suffix.to_owned()), constant);
                }
                None => {
                    exact.insert(key.clone(), constant);
                }
            }
        }
    }
    out.line("/// Foreign keys without an index, sorted, with the attribute each maps to.");
    let exact: Vec<String> = exact
        .iter()
        .map(|(key, constant)| tuple(&[format!("{key:?}"), constant.clone()]))
        .collect();
    array_item(&mut out, "const EXACT: &[(&str, &str)] = &", &exact, ";");
    out.blank();
    out.line("/// Foreign keys with an index, as the text before and after the index, with the");
    out.line("/// attribute each maps to.");
    let indexed: Vec<String> = indexed
        .iter()
        .map(|((prefix, suffix), constant)| {
            tuple(&[
                format!("{prefix:?}"),
                format!("{suffix:?}"),
                constant.clone(),
            ])
        })
        .collect();
    array_item(
        &mut out,
        "const INDEXED: &[(&str, &str, &str)] = &",
        &indexed,
        ";",
    );
    out.blank();
    out.line(COMPAT_FUNCTIONS.trim());
    out.finish()
}

const COMPAT_FUNCTIONS: &str = r#"
/// The equivalents of `attribute`, if it has any.
///
/// # Examples
///
/// ```
/// use closedloop_semconv::{attribute, compat};
///
/// let equivalents = compat::equivalents(attribute::GEN_AI_RESPONSE_MODEL).unwrap();
/// assert_eq!(equivalents.openinference, ["llm.model_name"]);
/// ```
pub fn equivalents(attribute: &str) -> Option<&'static Equivalents> {
    EQUIVALENTS
        .binary_search_by(|equivalents| equivalents.attribute.cmp(attribute))
        .ok()
        .map(|index| &EQUIVALENTS[index])
}

/// The closedloop attribute that a key of OpenInference or OpenLLMetry maps to.
///
/// Indexed keys resolve too; use [`match_foreign`] to get the index back.
///
/// # Examples
///
/// ```
/// use closedloop_semconv::{attribute, compat};
///
/// assert_eq!(
///     compat::canonical_for("llm.token_count.prompt"),
///     Some(attribute::GEN_AI_USAGE_INPUT_TOKENS)
/// );
/// assert_eq!(
///     compat::canonical_for("retrieval.documents.3.document.id"),
///     Some(attribute::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS)
/// );
/// assert_eq!(compat::canonical_for("no.such.key"), None);
/// ```
pub fn canonical_for(foreign_key: &str) -> Option<&'static str> {
    match_foreign(foreign_key).map(|found| found.attribute)
}

/// The closedloop attribute that a key of OpenInference or OpenLLMetry maps to, with the list
/// index for keys the registry writes with `<i>`.
///
/// # Examples
///
/// ```
/// use closedloop_semconv::{attribute, compat};
///
/// let found = compat::match_foreign("retrieval.documents.3.document.id").unwrap();
/// assert_eq!(found.attribute, attribute::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS);
/// assert_eq!(found.index, Some(3));
/// ```
pub fn match_foreign(foreign_key: &str) -> Option<ForeignMatch> {
    if let Ok(index) = EXACT.binary_search_by(|(key, _)| (*key).cmp(foreign_key)) {
        return Some(ForeignMatch {
            attribute: EXACT[index].1,
            index: None,
        });
    }
    INDEXED.iter().find_map(|&(prefix, suffix, attribute)| {
        let index = foreign_key.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Some(ForeignMatch {
            attribute,
            index: Some(parse_index(index)?),
        })
    })
}

/// Parses a list index: decimal digits only, no sign.
fn parse_index(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
"#;

/// The start of a generated Rust file: the header and the module docs.
fn header(module_doc: &str) -> Text {
    let mut out = Text::default();
    out.line(format!("// {HEADER}"));
    out.blank();
    out.doc("", "//!", module_doc);
    out.blank();
    out
}

/// `pub const NAME: &str = value;`, broken after `=` when too long, as rustfmt does.
fn const_item(indent: &str, name: &str, value: &str) -> String {
    let line = format!("{indent}pub const {name}: &str = {value};");
    if line.len() <= MAX_WIDTH {
        line
    } else {
        format!("{indent}pub const {name}: &str =\n{indent}    {value};")
    }
}

/// The widest list (array elements or tuple fields, without the brackets) rustfmt keeps on one
/// line with its default `array_width` and `fn_call_width`.
const LIST_WIDTH: usize = 60;

/// An array expression `[a, b]` after `head` and before `tail`, laid out as rustfmt does.
fn array_item(out: &mut Text, head: &str, elements: &[String], tail: &str) {
    for line in list(head, '[', ']', elements, tail) {
        out.line(line);
    }
}

/// A bracketed list after `head` and before `tail`: on one line when every element is one line
/// and the list fits rustfmt's widths, otherwise one element per line with trailing commas.
/// Elements may span several lines; the indentation is taken from `head`.
fn list(head: &str, open: char, close: char, elements: &[String], tail: &str) -> Vec<String> {
    let indent: String = head.chars().take_while(|c| *c == ' ').collect();
    let joined = elements.join(", ");
    let line = format!("{head}{open}{joined}{close}{tail}");
    if !joined.contains('\n') && joined.len() <= LIST_WIDTH && line.len() <= MAX_WIDTH {
        return vec![line];
    }
    let mut lines = vec![format!("{head}{open}")];
    for element in elements {
        let mut element_lines: Vec<String> = element
            .lines()
            .map(|line| format!("{indent}    {line}"))
            .collect();
        if let Some(last) = element_lines.last_mut() {
            last.push(',');
        }
        lines.extend(element_lines);
    }
    lines.push(format!("{indent}{close}{tail}"));
    lines
}

/// A tuple expression, laid out as rustfmt does, as one string that may span several lines.
fn tuple(fields: &[String]) -> String {
    list("", '(', ')', fields, "").join("\n")
}

fn code_list(keys: &[String]) -> String {
    keys.iter()
        .map(|key| code(key))
        .collect::<Vec<_>>()
        .join(", ")
}
