//! `docs/semconv.md`, in the style of the OpenTelemetry semantic-convention docs.

use std::collections::BTreeSet;

use super::{code, Text, HEADER};
use crate::lint::{REUSED_ATTRIBUTES, REUSED_NAMESPACES};
use crate::model::{GroupKind, RequirementLevel};
use crate::naming::OWN_PREFIX;
use crate::resolved::{AttributeDef, Group, GroupDetail, Model, SpanNamePart, ValueType};

/// Renders `docs/semconv.md`.
pub fn semconv_md(model: &Model) -> String {
    let mut out = Text::default();
    out.line(format!("<!-- {HEADER} -->"));
    out.blank();
    out.line("# closedloop semantic conventions");
    out.blank();
    out.line("**Status**: [Development][DocumentStatus]");
    out.blank();
    intro(&mut out, model);
    contents(&mut out, model);
    rules(&mut out, model);

    out.line("## Spans");
    for group in model.groups_of(GroupKind::Span) {
        span_section(&mut out, model, group);
    }
    out.blank();
    out.line("## Attributes");
    for group in model.groups_of(GroupKind::AttributeGroup) {
        attribute_group_section(&mut out, model, group);
    }
    out.blank();
    equivalents_section(&mut out, model);
    out.blank();
    metrics_section(&mut out, model);
    out.blank();
    out.line("[DocumentStatus]: https://opentelemetry.io/docs/specs/otel/document-status");
    out.finish()
}

fn intro(out: &mut Text, model: &Model) {
    let reused: Vec<String> = REUSED_NAMESPACES
        .iter()
        .map(|prefix| code(&format!("{prefix}*")))
        .chain(REUSED_ATTRIBUTES.iter().map(|id| code(id)))
        .collect();
    out.line(
        "These conventions describe the spans and metrics closedloop writes and reads to turn \
         feedback on LLM and RAG answers into failure records: the model call a user sees, the \
         retrieval, rerank and embedding steps behind it, the feedback about it, and the failure \
         record built from that feedback.",
    );
    out.blank();
    out.line(format!(
        "- **Existing names first.** The OpenTelemetry GenAI attributes are reused verbatim, as \
         are the generic registry attributes; closedloop never defines a twin of them. Reused: {}.",
        reused.join(", ")
    ));
    out.line(format!(
        "- **`{OWN_PREFIX}*` only where nothing exists.** closedloop's own attributes live under \
         the single prefix `{OWN_PREFIX}` and cover what no convention defines: prompt template \
         identity and content hash, the chunks actually placed in the prompt, the retrieval index \
         version, the query fingerprint, the feedback taxonomy, failure records and their triage."
    ));
    let opt_in = opt_in_attributes(model);
    out.line(format!(
        "- **Content is opt-in.** Attributes that hold prompts, messages, queries or comments are \
         never captured by default; an instrumentation offers an option to turn them on. They \
         are: {}.",
        opt_in
            .iter()
            .map(|id| code(id))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.line(
        "- **Compatible readers.** Each attribute lists the OpenInference and OpenLLMetry keys \
         that carry the same information, so spans written with those conventions can be read \
         too (see [Equivalents](#equivalents)).",
    );
    out.blank();
    out.line(
        "This page is generated from the YAML registry in \
         [`crates/semconv/model`](../crates/semconv/model), which also generates the Rust \
         constants of the `closedloop-semconv` crate.",
    );
    out.blank();
}

/// Every attribute some span group marks opt-in, sorted.
fn opt_in_attributes(model: &Model) -> BTreeSet<&str> {
    model
        .groups
        .iter()
        .flat_map(|group| &group.attributes)
        .filter(|attribute| attribute.requirement_level == Some(RequirementLevel::OptIn))
        .map(|attribute| attribute.id.as_str())
        .collect()
}

fn contents(out: &mut Text, model: &Model) {
    out.line("## Contents");
    out.blank();
    out.line("- [Rules](#rules)");
    out.line("- [Spans](#spans)");
    for group in model.groups_of(GroupKind::Span) {
        let title = group_title(group);
        out.line(format!("  - [{title}](#{})", slug(&title)));
    }
    out.line("- [Attributes](#attributes)");
    for group in model.groups_of(GroupKind::AttributeGroup) {
        let title = group_title(group);
        out.line(format!("  - [{title}](#{})", slug(&title)));
    }
    out.line("- [Equivalents](#equivalents)");
    out.line("- [Metrics](#metrics)");
    out.blank();
}

fn rules(out: &mut Text, model: &Model) {
    out.line("## Rules");
    out.blank();
    out.line(
        "Two rules decide where feedback and failure records go. Both keep them in the trace of \
         the response they are about, which is what lets trace-ID load balancing, tail sampling \
         and trace views handle them together with that response.",
    );
    for group in &model.groups {
        let (Some(rule), Some(note)) = (&group.rule, &group.note) else {
            continue;
        };
        out.blank();
        out.line(format!("### {rule}"));
        out.blank();
        out.line(format!("> {}", note.replace('\n', "\n> ")));
        out.blank();
        out.line(format!(
            "Stated on the [{}](#{}).",
            group_title(group),
            slug(&group_title(group))
        ));
    }
    out.blank();
}

fn span_section(out: &mut Text, model: &Model, group: &Group) {
    let GroupDetail::Span { kind, name } = &group.detail else {
        return;
    };
    out.blank();
    out.line(format!("### {}", group_title(group)));
    out.blank();
    out.line(format!(
        "**Status**: {} · **Group**: {} · **Span kind**: `{}`",
        stability(group),
        code(&group.id),
        kind.as_str().to_uppercase()
    ));
    out.blank();
    out.line(&group.brief);
    if let Some(note) = &group.note {
        out.blank();
        out.line(note);
    }
    out.blank();
    let placeholders: Vec<String> = name
        .parts
        .iter()
        .filter_map(|part| match part {
            SpanNamePart::Literal(_) => None,
            SpanNamePart::Placeholder(placeholder) => Some(code(&placeholder.attribute)),
        })
        .collect();
    out.line(format!(
        "**Span name**: {}. Parts whose attribute ({}) is not available are left out.",
        code(&name.template),
        placeholders.join(", ")
    ));
    out.blank();
    out.line("| Attribute | Type | Description | Examples | Requirement Level | Stability |");
    out.line("|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for attribute in &group.attributes {
        let Some(definition) = model.attribute(&attribute.id) else {
            continue;
        };
        let mut description = cell(&definition.brief);
        if let Some(note) = &attribute.note {
            notes.push((definition.id.as_str(), note.as_str()));
            description.push_str(&format!(" [{}]", notes.len()));
        }
        let level = match &attribute.requirement_level {
            Some(RequirementLevel::ConditionallyRequired(condition)) => {
                format!("`Conditionally Required` {}", cell(condition))
            }
            Some(level) => format!("`{level}`"),
            None => String::new(),
        };
        out.line(format!(
            "| {} | {} | {description} | {} | {level} | {} |",
            code(&definition.id),
            type_cell(definition),
            examples_cell(definition),
            definition.stability.as_str(),
        ));
    }
    footnotes(out, &notes);
}

fn attribute_group_section(out: &mut Text, model: &Model, group: &Group) {
    out.blank();
    out.line(format!("### {}", group_title(group)));
    out.blank();
    out.line(format!("**Group**: {}", code(&group.id)));
    out.blank();
    out.line(&group.brief);
    if let Some(note) = &group.note {
        out.blank();
        out.line(note);
    }
    out.blank();
    out.line("| Attribute | Type | Description | Examples | Stability |");
    out.line("|---|---|---|---|---|");
    let mut notes = Vec::new();
    let definitions: Vec<&AttributeDef> = group
        .attributes
        .iter()
        .filter_map(|attribute| model.attribute(&attribute.id))
        .collect();
    for definition in &definitions {
        let mut description = cell(&definition.brief);
        if let Some(note) = &definition.note {
            notes.push((definition.id.as_str(), note.as_str()));
            description.push_str(&format!(" [{}]", notes.len()));
        }
        out.line(format!(
            "| {} | {} | {description} | {} | {} |",
            code(&definition.id),
            type_cell(definition),
            examples_cell(definition),
            definition.stability.as_str(),
        ));
    }
    footnotes(out, &notes);
    for definition in definitions {
        let ValueType::Enum(members) = &definition.value_type else {
            continue;
        };
        out.blank();
        out.line(format!(
            "{} has the following list of well-known values. If one of them applies, then the \
             respective value MUST be used.",
            code(&definition.id)
        ));
        out.blank();
        out.line("| Value | Description | Stability |");
        out.line("|---|---|---|");
        for member in members {
            let mut description = cell(&member.brief);
            if let Some(note) = &member.note {
                description.push(' ');
                description.push_str(&cell(note));
            }
            out.line(format!(
                "| {} | {description} | {} |",
                code(&member.value),
                member.stability.as_str()
            ));
        }
    }
}

fn equivalents_section(out: &mut Text, model: &Model) {
    out.line("## Equivalents");
    out.blank();
    out.line(
        "Keys of [OpenInference](https://github.com/Arize-ai/openinference) and \
         [OpenLLMetry](https://github.com/traceloop/openllmetry) that carry the same information \
         as a closedloop attribute, preferred key first. `<i>` stands for a list index: \
         OpenInference writes one attribute per list element \
         (`retrieval.documents.0.document.id`, `retrieval.documents.1.document.id`, …) where \
         closedloop writes one array.",
    );
    out.blank();
    out.line("| Attribute | OpenInference | OpenLLMetry |");
    out.line("|---|---|---|");
    for attribute in &model.attributes {
        if attribute.compat.is_empty() {
            continue;
        }
        let keys = |keys: &[String]| {
            keys.iter()
                .map(|key| code(key))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        out.line(format!(
            "| {} | {} | {} |",
            code(&attribute.id),
            keys(&attribute.compat.openinference),
            keys(&attribute.compat.openllmetry)
        ));
    }
}

fn metrics_section(out: &mut Text, model: &Model) {
    out.line("## Metrics");
    out.blank();
    out.line("The metrics the closedloop receiver exports about itself.");
    out.blank();
    out.line("| Name | Instrument | Unit | Attributes | Description | Stability |");
    out.line("|---|---|---|---|---|---|");
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
    for (name, instrument, unit, group) in metrics {
        let attributes: Vec<String> = group
            .attributes
            .iter()
            .map(|attribute| {
                let level = match &attribute.requirement_level {
                    Some(level) => format!(" ({})", level.to_string().to_lowercase()),
                    None => String::new(),
                };
                format!("{}{level}", code(&attribute.id))
            })
            .collect();
        let mut description = cell(&group.brief);
        if let Some(note) = &group.note {
            description.push(' ');
            description.push_str(&cell(note));
        }
        out.line(format!(
            "| {} | {} | {} | {} | {description} | {} |",
            code(name),
            instrument.as_str(),
            code(unit),
            if attributes.is_empty() {
                "none".to_owned()
            } else {
                attributes.join("<br>")
            },
            stability(group)
        ));
    }
}

fn footnotes(out: &mut Text, notes: &[(&str, &str)]) {
    for (i, (id, note)) in notes.iter().enumerate() {
        out.blank();
        out.line(format!("**[{}] {}:** {}", i + 1, code(id), note));
    }
}

fn type_cell(attribute: &AttributeDef) -> String {
    match &attribute.value_type {
        ValueType::Primitive(primitive) => code(primitive.name()),
        ValueType::Enum(_) => "`string` (enum)".to_owned(),
    }
}

fn examples_cell(attribute: &AttributeDef) -> String {
    attribute
        .examples
        .iter()
        .map(|example| cell(&code(&example.to_markdown())))
        .collect::<Vec<_>>()
        .join("; ")
}

fn stability(group: &Group) -> &'static str {
    group.stability.map_or("", |stability| stability.as_str())
}

/// A group's heading: its display name, or its id's last segment as words.
fn group_title(group: &Group) -> String {
    if let Some(name) = &group.display_name {
        return name.clone();
    }
    let stem = group.id.rsplit('.').next().unwrap_or(&group.id);
    let mut title = stem.replace('_', " ");
    if let Some(first) = title.get(0..1) {
        title.replace_range(0..1, &first.to_uppercase());
    }
    if group.kind == GroupKind::Span {
        title.push_str(" span");
    }
    title
}

/// Text for a table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The anchor GitHub gives a heading.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_match_github() {
        assert_eq!(slug("Feedback span"), "feedback-span");
        assert_eq!(
            slug("Session, user and error attributes (OpenTelemetry)"),
            "session-user-and-error-attributes-opentelemetry"
        );
    }

    #[test]
    fn cells_are_one_line_and_escape_pipes() {
        assert_eq!(cell("a |\n b"), "a \\| b");
    }
}
