//! The registry lints: the real registry passes, and each lint fires on a registry that breaks
//! its rule.

use closedloop_semconv_gen::{lint, workspace_root, ProblemKind, Registry, MODEL_DIR};

/// A small registry that passes every lint; each test breaks one thing in it.
const BASE: &str = r#"
groups:
  - id: registry.closedloop.demo
    type: attribute_group
    brief: Demo attributes.
    attributes:
      - id: closedloop.demo.name
        type: string
        brief: A name.
        stability: development
        examples: ["alpha"]
        annotations:
          compat:
            openinference: ["demo.name"]
            openllmetry: ["traceloop.demo.<i>.name"]
      - id: closedloop.demo.kind
        brief: A kind.
        stability: development
        examples: ["first"]
        type:
          members:
            - id: first
              value: "first"
              brief: The first kind.
              stability: development
            - id: second
              value: "second"
              brief: The second kind.
              stability: development
      - id: gen_ai.demo.count
        type: int
        brief: A count.
        stability: development
        examples: [3]
  - id: span.closedloop.demo
    type: span
    stability: development
    span_kind: internal
    brief: A demo span.
    annotations:
      span_name: "demo {closedloop.demo.kind} {closedloop.demo.name}"
    attributes:
      - ref: closedloop.demo.name
        requirement_level: required
      - ref: closedloop.demo.kind
        requirement_level:
          conditionally_required: If known.
  - id: metric.closedloop.demo.count
    type: metric
    metric_name: closedloop.demo.count
    stability: development
    brief: Demo events.
    instrument: counter
    unit: "{event}"
    attributes:
      - ref: closedloop.demo.kind
        requirement_level: recommended
"#;

/// The kinds of problem the lints find in the given files.
fn kinds(files: &[(&str, &str)]) -> Vec<ProblemKind> {
    let registry = Registry::from_sources(files.iter().copied()).expect("the YAML parses");
    let mut kinds: Vec<ProblemKind> = lint(&registry).into_iter().map(|p| p.kind).collect();
    kinds.dedup();
    kinds
}

/// The kinds of problem in `BASE` with `from` replaced by `to`.
fn kinds_after(from: &str, to: &str) -> Vec<ProblemKind> {
    assert!(BASE.contains(from), "the base registry contains {from:?}");
    kinds(&[("base.yaml", &BASE.replacen(from, to, 1))])
}

#[test]
fn the_registry_passes_every_lint() {
    let registry = Registry::load(&workspace_root().join(MODEL_DIR)).expect("the registry parses");
    let problems = lint(&registry);
    assert!(
        problems.is_empty(),
        "{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(registry.files.len() >= 5);
}

#[test]
fn the_base_registry_passes_every_lint() {
    assert_eq!(kinds(&[("base.yaml", BASE)]), []);
}

#[test]
fn duplicate_attribute_ids_fail() {
    let second = r#"
groups:
  - id: registry.closedloop.other
    type: attribute_group
    brief: More attributes.
    attributes:
      - id: closedloop.demo.name
        type: string
        brief: The same name again.
        stability: development
        examples: ["beta"]
"#;
    assert_eq!(
        kinds(&[("base.yaml", BASE), ("other.yaml", second)]),
        [ProblemKind::DuplicateAttributeId]
    );
}

#[test]
fn duplicate_group_ids_fail() {
    let second = r#"
groups:
  - id: registry.closedloop.demo
    type: attribute_group
    brief: A second group with the same id.
    attributes: []
"#;
    assert_eq!(
        kinds(&[("base.yaml", BASE), ("other.yaml", second)]),
        [ProblemKind::DuplicateGroupId]
    );
}

#[test]
fn missing_brief_fails() {
    assert_eq!(
        kinds_after("        brief: A name.\n", ""),
        [ProblemKind::MissingField]
    );
}

#[test]
fn missing_type_fails() {
    assert_eq!(
        kinds_after(
            "        type: string\n        brief: A name.",
            "        brief: A name."
        ),
        [ProblemKind::MissingField]
    );
}

#[test]
fn missing_stability_fails() {
    assert_eq!(
        kinds_after(
            "        brief: A name.\n        stability: development\n",
            "        brief: A name.\n"
        ),
        [ProblemKind::MissingField]
    );
}

#[test]
fn missing_examples_fail() {
    assert_eq!(
        kinds_after("        examples: [\"alpha\"]\n", ""),
        [ProblemKind::MissingField]
    );
}

#[test]
fn missing_member_brief_fails() {
    assert_eq!(
        kinds_after("              brief: The second kind.\n", ""),
        [ProblemKind::MissingField]
    );
}

#[test]
fn duplicate_member_ids_fail() {
    assert_eq!(
        kinds_after("            - id: second", "            - id: first"),
        [ProblemKind::DuplicateMemberId]
    );
}

#[test]
fn duplicate_member_values_fail() {
    assert_eq!(
        kinds_after("value: \"second\"", "value: \"first\""),
        [ProblemKind::DuplicateMemberValue]
    );
}

#[test]
fn unknown_types_fail() {
    assert_eq!(
        kinds_after("type: int", "type: integer"),
        [ProblemKind::InvalidType]
    );
}

#[test]
fn examples_of_the_wrong_type_fail() {
    assert_eq!(
        kinds_after("examples: [3]", "examples: [\"three\"]"),
        [ProblemKind::ExampleTypeMismatch]
    );
    assert_eq!(
        kinds_after("examples: [\"first\"]", "examples: [\"third\"]"),
        [ProblemKind::ExampleTypeMismatch]
    );
}

#[test]
fn unresolved_refs_fail() {
    assert_eq!(
        kinds_after(
            "      - ref: closedloop.demo.name\n        requirement_level: required",
            "      - ref: closedloop.demo.nmae\n        requirement_level: required"
        ),
        // The span name still names `closedloop.demo.name`, which the span no longer carries.
        [ProblemKind::UnresolvedRef, ProblemKind::InvalidSpanName]
    );
}

#[test]
fn refs_without_a_requirement_level_fail() {
    assert_eq!(
        kinds_after(
            "      - ref: closedloop.demo.name\n        requirement_level: required\n",
            "      - ref: closedloop.demo.name\n"
        ),
        [ProblemKind::MissingField]
    );
}

#[test]
fn compat_keys_naming_a_missing_attribute_fail() {
    assert_eq!(
        kinds_after("[\"demo.name\"]", "[\"closedloop.demo.title\"]"),
        [ProblemKind::UnknownCompatTarget]
    );
}

#[test]
fn compat_keys_naming_a_different_attribute_fail() {
    assert_eq!(
        kinds_after("[\"demo.name\"]", "[\"closedloop.demo.kind\"]"),
        [ProblemKind::UnknownCompatTarget]
    );
}

#[test]
fn compat_keys_under_two_attributes_fail() {
    let with_second_owner = BASE.replacen(
        "        examples: [3]\n",
        "        examples: [3]\n        annotations:\n          compat:\n            openinference: [\"demo.name\"]\n",
        1,
    );
    assert_eq!(
        kinds(&[("base.yaml", &with_second_owner)]),
        [ProblemKind::AmbiguousCompatKey]
    );
}

#[test]
fn malformed_index_markers_fail() {
    assert_eq!(
        kinds_after("traceloop.demo.<i>.name", "traceloop.demo<i>.name"),
        [ProblemKind::InvalidCompatKey]
    );
    assert_eq!(
        kinds_after("traceloop.demo.<i>.name", "traceloop.<i>.demo.<i>.name"),
        [ProblemKind::InvalidCompatKey]
    );
}

#[test]
fn attributes_outside_the_allowed_namespaces_fail() {
    assert_eq!(
        kinds_after("id: gen_ai.demo.count", "id: http.demo.count"),
        [ProblemKind::ForeignNamespace]
    );
}

#[test]
fn reused_opentelemetry_attributes_are_allowed() {
    assert_eq!(kinds_after("id: gen_ai.demo.count", "id: session.id"), []);
}

#[test]
fn invalid_ids_fail() {
    assert_eq!(
        kinds_after("id: gen_ai.demo.count", "id: gen_ai.Demo.count"),
        [ProblemKind::InvalidId]
    );
}

#[test]
fn span_names_must_use_the_span_attributes() {
    assert_eq!(
        kinds_after("demo {closedloop.demo.kind}", "demo {gen_ai.demo.count}"),
        [ProblemKind::InvalidSpanName]
    );
    assert_eq!(
        kinds_after(
            "demo {closedloop.demo.kind}",
            "demo  {closedloop.demo.kind}"
        ),
        [ProblemKind::InvalidSpanName]
    );
}

#[test]
fn spans_without_a_name_template_fail() {
    assert_eq!(
        kinds_after(
            "    annotations:\n      span_name: \"demo {closedloop.demo.kind} {closedloop.demo.name}\"\n",
            ""
        ),
        [ProblemKind::MissingField]
    );
}

#[test]
fn metrics_without_a_unit_fail() {
    assert_eq!(
        kinds_after("    unit: \"{event}\"\n", ""),
        [ProblemKind::MissingField]
    );
}

#[test]
fn attributes_with_the_same_rust_name_fail() {
    assert_eq!(
        kinds_after("id: gen_ai.demo.count", "id: closedloop.demo_name"),
        // `closedloop.demo_name` and `closedloop.demo.name` are both `CLOSEDLOOP_DEMO_NAME`.
        [ProblemKind::NameCollision]
    );
}

#[test]
fn unknown_fields_are_parse_errors() {
    let error = Registry::from_sources([(
        "base.yaml",
        BASE.replacen("brief: A name.", "breif: A name.", 1),
    )])
    .expect_err("an unknown field is rejected");
    assert!(format!("{error:#}").contains("breif"), "{error:#}");
}

#[test]
fn problems_name_the_file_and_group() {
    let registry =
        Registry::from_sources([("base.yaml", BASE.replacen("type: int", "type: integer", 1))])
            .expect("the YAML parses");
    let problems = lint(&registry);
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "base.yaml: group `registry.closedloop.demo`: attribute `gen_ai.demo.count` has unknown type `integer`"
    );
}
