//! How registry ids become Rust names.

/// The project prefix of closedloop's own attributes.
pub const OWN_PREFIX: &str = "closedloop.";

/// The constant name of an attribute or metric: `gen_ai.request.model` → `GEN_AI_REQUEST_MODEL`.
pub fn const_name(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// The enum type of an enum attribute: PascalCase of the id without the `closedloop.` prefix,
/// so `closedloop.feedback.signal` → `FeedbackSignal` and `gen_ai.operation.name` →
/// `GenAiOperationName`.
pub fn enum_name(id: &str) -> String {
    pascal_case(id.strip_prefix(OWN_PREFIX).unwrap_or(id))
}

/// PascalCase of an id, splitting on `.`, `_` and `-`: `aws_bedrock` → `AwsBedrock`.
pub fn pascal_case(id: &str) -> String {
    id.split(['.', '_', '-'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The parameter a span-name helper takes for an attribute: the id without the project prefix
/// and its first namespace segment, so `gen_ai.request.model` → `request_model` and
/// `closedloop.feedback.signal` → `signal`.
pub fn parameter_name(id: &str) -> String {
    let id = id.strip_prefix(OWN_PREFIX).unwrap_or(id);
    let rest = id.split_once('.').map_or(id, |(_, rest)| rest);
    rest.replace(['.', '-'], "_")
}

/// The span-name helper of a span group: `span.closedloop.failure_record` →
/// `failure_record_name`.
pub fn span_function_name(group_id: &str) -> String {
    format!("{}_name", span_stem(group_id))
}

/// The constant prefix of a span group: `span.closedloop.failure_record` → `FAILURE_RECORD`.
pub fn span_const_prefix(group_id: &str) -> String {
    const_name(span_stem(group_id))
}

fn span_stem(group_id: &str) -> &str {
    group_id.rsplit('.').next().unwrap_or(group_id)
}

/// Whether `word` is a Rust keyword, which cannot be used as a parameter name.
pub fn is_rust_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "try",
        "type", "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while",
        "yield",
    ];
    KEYWORDS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(const_name("gen_ai.request.model"), "GEN_AI_REQUEST_MODEL");
        assert_eq!(
            const_name("closedloop.context.chunk_ids"),
            "CLOSEDLOOP_CONTEXT_CHUNK_IDS"
        );
        assert_eq!(enum_name("closedloop.feedback.signal"), "FeedbackSignal");
        assert_eq!(enum_name("gen_ai.provider.name"), "GenAiProviderName");
        assert_eq!(pascal_case("irrelevant_context"), "IrrelevantContext");
        assert_eq!(parameter_name("gen_ai.data_source.id"), "data_source_id");
        assert_eq!(parameter_name("closedloop.retrieval.stage"), "stage");
        assert_eq!(
            span_function_name("span.closedloop.failure_record"),
            "failure_record_name"
        );
        assert_eq!(
            span_const_prefix("span.closedloop.generation"),
            "GENERATION"
        );
        assert!(is_rust_keyword("type"));
        assert!(!is_rust_keyword("signal"));
    }
}
