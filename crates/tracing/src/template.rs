//! Prompt templates with content-hash versions.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use opentelemetry::StringValue;
use sha2::{Digest, Sha256};

use crate::content::ContentKind;
use crate::layer::{ClosedloopLayer, TemplateUse, Update};

/// A prompt template: a stable id, its text with `{name}` placeholders, and its version.
///
/// The version is the first 12 hex digits of the SHA-256 of the text, so any edit yields a new
/// version, unless a version name is pinned with [`PromptTemplate::with_version`]. The hash
/// (`sha256:` and 64 hex digits) always identifies the exact text. `{{` and `}}` render as
/// literal braces.
#[derive(Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    inner: Arc<TemplateInner>,
}

#[derive(PartialEq, Eq)]
struct TemplateInner {
    id: String,
    text: String,
    version: String,
    hash: String,
    variables: Vec<String>,
}

impl fmt::Debug for PromptTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptTemplate")
            .field("id", &self.inner.id)
            .field("version", &self.inner.version)
            .field("hash", &self.inner.hash)
            .field("variables", &self.inner.variables)
            .finish_non_exhaustive()
    }
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// No template with this id is registered.
    #[error("no prompt template with id `{0}`")]
    UnknownTemplate(String),
    /// The template uses a variable that was not given.
    #[error("prompt template `{template}` needs variable `{variable}`")]
    MissingVariable {
        /// The template id.
        template: String,
        /// The missing variable.
        variable: String,
    },
}

/// One piece of a parsed template.
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// Splits a template into literal text and `{name}` placeholders.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '}']) {
        let (before, after) = rest.split_at(pos);
        if !before.is_empty() {
            out.push(Piece::Text(before));
        }
        if after.starts_with("{{") || after.starts_with("}}") {
            out.push(Piece::Text(&after[..1]));
            rest = &after[2..];
        } else if let Some(end) = after.strip_prefix('{').and_then(|a| a.find('}')) {
            let name = &after[1..1 + end];
            if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                out.push(Piece::Variable(name));
            } else {
                out.push(Piece::Text(&after[..2 + end]));
            }
            rest = &after[2 + end..];
        } else {
            out.push(Piece::Text(&after[..1]));
            rest = &after[1..];
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

impl PromptTemplate {
    /// A template whose version is derived from its text.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        let mut variables: Vec<String> = Vec::new();
        for piece in pieces(&text) {
            if let Piece::Variable(name) = piece {
                if !variables.iter().any(|v| v == name) {
                    variables.push(name.to_owned());
                }
            }
        }
        PromptTemplate {
            inner: Arc::new(TemplateInner {
                id: id.into(),
                version: digest[..12].to_owned(),
                hash: format!("sha256:{digest}"),
                text,
                variables,
            }),
        }
    }

    /// Pins a version name (`v3`, `2026-11-01`) instead of the content-derived version.
    pub fn with_version(self, version: impl Into<String>) -> Self {
        let inner = &self.inner;
        PromptTemplate {
            inner: Arc::new(TemplateInner {
                id: inner.id.clone(),
                text: inner.text.clone(),
                version: version.into(),
                hash: inner.hash.clone(),
                variables: inner.variables.clone(),
            }),
        }
    }

    /// The template id (`closedloop.prompt.template.id`, also `gen_ai.prompt.name`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The version (`closedloop.prompt.template.version`).
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The content hash, `sha256:` and 64 hex digits (`closedloop.prompt.template.hash`).
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    /// The template text.
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// The placeholder names, in order of first use (`closedloop.prompt.variables`).
    pub fn variables(&self) -> &[String] {
        &self.inner.variables
    }

    /// Renders the template with `vars` and records it on the current span.
    ///
    /// On a generation span this writes the template id, version, hash, `gen_ai.prompt.name`
    /// and the variable names; the variable values and the template text only when prompt
    /// capture is on, after the redaction hook. Rendered in any other span, the template is
    /// written to the generation spans created below that span. A generation span records one
    /// template: the first it inherits or renders.
    pub fn render<K, V>(&self, vars: &[(K, V)]) -> Result<String, RenderError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.render_in(&tracing::Span::current(), vars)
    }

    /// Like [`render`](Self::render), recording on `span` instead of the current span.
    pub fn render_in<K, V>(
        &self,
        span: &tracing::Span,
        vars: &[(K, V)],
    ) -> Result<String, RenderError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        };
        let mut out = String::with_capacity(self.inner.text.len());
        for piece in pieces(&self.inner.text) {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Variable(name) => match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        return Err(RenderError::MissingVariable {
                            template: self.inner.id.clone(),
                            variable: name.to_owned(),
                        })
                    }
                },
            }
        }
        span.with_subscriber(|(id, dispatch)| {
            let Some(layer) = ClosedloopLayer::find(dispatch) else {
                return;
            };
            let policy = layer.content_policy();
            let values_json = policy.captures(ContentKind::Prompt).then(|| {
                let map: serde_json::Map<String, serde_json::Value> = self
                    .inner
                    .variables
                    .iter()
                    .filter_map(|name| {
                        let value = lookup(name)?;
                        let value = policy.capture(ContentKind::Prompt, value)?;
                        Some((name.clone(), serde_json::Value::String(value.into_owned())))
                    })
                    .collect();
                serde_json::Value::Object(map).to_string()
            });
            let text = policy
                .capture(ContentKind::Prompt, &self.inner.text)
                .map(|text| text.into_owned());
            let template = TemplateUse {
                id: StringValue::from(self.inner.id.clone()),
                version: StringValue::from(self.inner.version.clone()),
                hash: StringValue::from(self.inner.hash.clone()),
                variables: self
                    .inner
                    .variables
                    .iter()
                    .map(|v| StringValue::from(Arc::<str>::from(v.as_str())))
                    .collect(),
                values_json,
                text,
            };
            layer.update(dispatch, id, Update::Template(Arc::new(template)));
        });
        Ok(out)
    }
}

/// The application's prompt templates, by id.
#[derive(Debug, Clone, Default)]
pub struct TemplateRegistry {
    templates: HashMap<String, PromptTemplate>,
}

impl TemplateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a template whose version is derived from its text, replacing one with the same id;
    /// returns it.
    pub fn register(&mut self, id: impl Into<String>, text: impl Into<String>) -> PromptTemplate {
        self.insert(PromptTemplate::new(id, text))
    }

    /// Adds a template, replacing one with the same id; returns it.
    pub fn insert(&mut self, template: PromptTemplate) -> PromptTemplate {
        self.templates
            .insert(template.id().to_owned(), template.clone());
        template
    }

    /// The template with this id.
    pub fn get(&self, id: &str) -> Option<&PromptTemplate> {
        self.templates.get(id)
    }

    /// Renders the template `id` and records it on the current span; see
    /// [`PromptTemplate::render`].
    pub fn render<K, V>(&self, id: &str, vars: &[(K, V)]) -> Result<String, RenderError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.get(id)
            .ok_or_else(|| RenderError::UnknownTemplate(id.to_owned()))?
            .render(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_content_hash_prefix_unless_pinned() {
        let t = PromptTemplate::new("answer", "Context: {context}\nQ: {question}");
        let digest = hex::encode(Sha256::digest(t.text().as_bytes()));
        assert_eq!(t.hash(), format!("sha256:{digest}"));
        assert_eq!(t.version(), &digest[..12]);
        let edited = PromptTemplate::new("answer", "Context: {context}\nQuestion: {question}");
        assert_ne!(edited.version(), t.version());
        let pinned = t.clone().with_version("v3");
        assert_eq!(pinned.version(), "v3");
        assert_eq!(pinned.hash(), t.hash());
    }

    #[test]
    fn renders_placeholders_and_escapes() {
        let t = PromptTemplate::new("t", "{a} and {b}, {{literal}} {a} {not a var}");
        assert_eq!(t.variables(), ["a", "b"]);
        let out = t.render(&[("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(out, "1 and 2, {literal} 1 {not a var}");
        assert_eq!(
            t.render(&[("a", "1")]),
            Err(RenderError::MissingVariable {
                template: "t".into(),
                variable: "b".into()
            })
        );
    }

    #[test]
    fn registry_renders_by_id() {
        let mut registry = TemplateRegistry::new();
        registry.register("greet", "Hello {name}");
        assert_eq!(
            registry.render("greet", &[("name", "Ada")]).unwrap(),
            "Hello Ada"
        );
        assert_eq!(
            registry.render("missing", &[("name", "Ada")]),
            Err(RenderError::UnknownTemplate("missing".into()))
        );
    }
}
