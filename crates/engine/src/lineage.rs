//! Where the responses of one export request sit in their traces, and what follows for the
//! join: which span resolves to which response, and which nested LLM spans are one call.
//!
//! The receiver reads every span of a request at once, so for each response span it knows
//! the ancestors present in the same request ([`Lineage`]). From them, `plan` decides:
//!
//! - the response an ancestor span S *produced* is the last-ending response beneath S (ties:
//!   the greatest span id), and S becomes an alias of it;
//! - an LLM span beneath another LLM span of the request (LlamaIndex's `predict` around its
//!   `chat` call) is the same call: the inner one is kept, its missing details (template,
//!   model, session, data source, chunk ids, fingerprint, …) are filled from the enclosing
//!   one, nearest first, and the enclosing span becomes an alias of it. An enclosing LLM span
//!   with several LLM spans beneath it folds into the last-ending one, as any ancestor would
//!   resolve to it; the others stay responses of their own.
//!
//! Only ancestors of responses are aliased, so a request of plain spans costs nothing here.

use std::collections::{HashMap, HashSet};

use crate::records::{Response, SpanId, SpanRef};

/// The most ancestors the receiver reads above one response span.
pub const MAX_ANCESTORS: usize = 32;

/// Where one response span sits in its export request's span tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The response span.
    pub span: SpanRef,
    /// Its parent span id, when it has one (present in the request or not).
    pub parent: Option<SpanId>,
    /// Its ancestors present in the same request, nearest first (so the parent first when the
    /// request holds it), at most [`MAX_ANCESTORS`].
    pub ancestors: Vec<SpanId>,
}

/// A response to index, after the request's nested LLM spans were folded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    /// The response, with details filled from the LLM spans folded into it.
    pub(crate) response: Response,
    /// Its span.
    pub(crate) span: SpanRef,
    /// Its parent span id.
    pub(crate) parent: Option<SpanId>,
    /// Whether its parent span was in the same request (then the request said all there is
    /// about it, and no stored response is looked for under that id).
    pub(crate) parent_in_request: bool,
}

/// What one request's responses become.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// The responses to index, in request order.
    pub(crate) responses: Vec<Planned>,
    /// Spans that are not responses (ancestors, folded LLM spans) and the span id of the
    /// response of their trace they resolve to, ordered by span.
    pub(crate) aliases: Vec<(SpanRef, SpanId)>,
}

/// Whether `a` ended after `b` (ties: the greater span id), for "the last-ending response".
fn ends_after(a: &Response, a_span: SpanRef, b: &Response, b_span: SpanRef) -> bool {
    (a.end_unix_nano, a_span.span_id) > (b.end_unix_nano, b_span.span_id)
}

/// Folds the request's nested LLM spans and finds the response each ancestor produced.
/// Responses without a span are dropped (nothing can judge them).
pub(crate) fn plan(responses: Vec<Response>, lineage: &[Lineage]) -> Plan {
    let lineage: HashMap<SpanRef, &Lineage> = lineage.iter().map(|l| (l.span, l)).collect();
    let mut spans: Vec<SpanRef> = Vec::with_capacity(responses.len());
    let mut responses: Vec<Response> = responses
        .into_iter()
        .filter(|response| response.span.is_some())
        .collect();
    for response in &responses {
        spans.extend(response.span);
    }
    let index: HashMap<SpanRef, usize> = spans.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let ancestors = |i: usize| -> Vec<SpanRef> {
        let span = spans[i];
        lineage.get(&span).map_or_else(Vec::new, |l| {
            l.ancestors
                .iter()
                .filter_map(|&id| SpanRef::new(span.trace_id, id))
                .filter(|ancestor| *ancestor != span)
                .collect()
        })
    };
    let all: Vec<Vec<SpanRef>> = (0..spans.len()).map(ancestors).collect();
    // A response with a response beneath it is an enclosing LLM span.
    let enclosing: HashSet<usize> = all
        .iter()
        .flatten()
        .filter_map(|ancestor| index.get(ancestor).copied())
        .collect();
    // The last-ending innermost response beneath each ancestor.
    let mut produced: HashMap<SpanRef, usize> = HashMap::new();
    for (i, above) in all.iter().enumerate() {
        if enclosing.contains(&i) {
            continue;
        }
        for &ancestor in above {
            let best = produced.entry(ancestor).or_insert(i);
            if ends_after(&responses[i], spans[i], &responses[*best], spans[*best]) {
                *best = i;
            }
        }
    }
    // Fill each kept response from the enclosing LLM spans folded into it, nearest first.
    let mut folded: HashSet<usize> = HashSet::new();
    for (i, above) in all.iter().enumerate() {
        if enclosing.contains(&i) {
            continue;
        }
        for ancestor in above {
            let Some(&outer) = index.get(ancestor) else {
                continue;
            };
            if produced.get(ancestor) == Some(&i) {
                let from = responses[outer].clone();
                fill_missing(&mut responses[i], &from);
                folded.insert(outer);
            }
        }
    }
    let mut aliases: Vec<(SpanRef, SpanId)> = produced
        .iter()
        .filter(|(ancestor, _)| index.get(ancestor).is_none_or(|i| folded.contains(i)))
        .map(|(ancestor, &i)| (*ancestor, spans[i].span_id))
        .collect();
    aliases.sort_unstable();
    let planned = responses
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !folded.contains(i))
        .map(|(i, response)| {
            let span = spans[i];
            let parent = lineage.get(&span).and_then(|l| l.parent);
            let parent_in_request = lineage
                .get(&span)
                .is_some_and(|l| parent.is_some() && l.ancestors.first() == parent.as_ref());
            Planned {
                response,
                span,
                parent,
                parent_in_request,
            }
        })
        .collect();
    Plan {
        responses: planned,
        aliases,
    }
}

/// Fills the details `into` lacks from `from`, the other span of the same LLM call; whether
/// any detail but content changed. A template id comes with its version; the hash, the
/// text and every other detail are filled one by one.
pub(crate) fn fill_missing(into: &mut Response, from: &Response) -> bool {
    fn fill<T: Clone>(into: &mut Option<T>, from: &Option<T>) -> bool {
        if into.is_none() && from.is_some() {
            into.clone_from(from);
            return true;
        }
        false
    }
    let mut changed = false;
    if into.template.id.is_none() && from.template.id.is_some() {
        into.template.id.clone_from(&from.template.id);
        if from.template.version.is_some() {
            into.template.version.clone_from(&from.template.version);
        }
        changed = true;
    }
    changed |= fill(&mut into.template.version, &from.template.version);
    changed |= fill(&mut into.template.hash, &from.template.hash);
    fill(&mut into.template.text, &from.template.text);
    changed |= fill(&mut into.response_id, &from.response_id);
    changed |= fill(&mut into.chunk_ids, &from.chunk_ids);
    changed |= fill(&mut into.model, &from.model);
    changed |= fill(&mut into.provider, &from.provider);
    changed |= fill(&mut into.parameters, &from.parameters);
    changed |= fill(&mut into.data_source, &from.data_source);
    changed |= fill(&mut into.index_version, &from.index_version);
    changed |= fill(&mut into.session_id, &from.session_id);
    changed |= fill(&mut into.user_id, &from.user_id);
    changed |= fill(&mut into.fingerprint, &from.fingerprint);
    fill(&mut into.content.input, &from.content.input);
    fill(&mut into.content.output, &from.content.output);
    fill(&mut into.content.query, &from.content.query);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Template;

    const TRACE: [u8; 16] = [7; 16];

    fn span(n: u8) -> SpanRef {
        SpanRef::new(TRACE, [n; 8]).unwrap()
    }

    fn response(n: u8, end_s: u64) -> Response {
        Response {
            span: Some(span(n)),
            start_unix_nano: 1,
            end_unix_nano: end_s * 1_000_000_000,
            ..Default::default()
        }
    }

    /// The lineage of span `n` under the ancestors `above` (nearest first), all present.
    fn under(n: u8, above: &[u8]) -> Lineage {
        Lineage {
            span: span(n),
            parent: above.first().map(|&p| [p; 8]),
            ancestors: above.iter().map(|&a| [a; 8]).collect(),
        }
    }

    fn kept(plan: &Plan) -> Vec<SpanRef> {
        plan.responses.iter().map(|p| p.span).collect()
    }

    /// A server span (1) over a chain (2) over two LLM calls (3, 4): both ancestors produced
    /// the one that ended last.
    #[test]
    fn ancestors_resolve_to_the_last_ending_response_beneath_them() {
        let plan = plan(
            vec![response(4, 20), response(3, 10)],
            &[under(3, &[2, 1]), under(4, &[2, 1])],
        );
        assert_eq!(kept(&plan), [span(4), span(3)]);
        assert_eq!(plan.aliases, [(span(1), [4; 8]), (span(2), [4; 8])]);
        assert!(plan.responses.iter().all(|p| p.parent_in_request));
    }

    /// LlamaIndex: predict (2, with the template) over chat (3, with the model) under a
    /// server span (1): one response, the inner one, with both spans' details.
    #[test]
    fn nested_llm_spans_fold_into_the_inner_one() {
        let mut outer = response(2, 30);
        outer.template = Template {
            id: Some("qa".into()),
            version: Some("2".into()),
            ..Default::default()
        };
        outer.session_id = Some("s-1".into());
        outer.model = Some("outer-model".into());
        let mut inner = response(3, 20);
        inner.model = Some("gpt-4o-mini".into());
        let plan = plan(vec![outer, inner], &[under(2, &[1]), under(3, &[2, 1])]);
        assert_eq!(kept(&plan), [span(3)]);
        let kept = &plan.responses[0].response;
        assert_eq!(kept.template.id.as_deref(), Some("qa"));
        assert_eq!(kept.template.version.as_deref(), Some("2"));
        assert_eq!(kept.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            kept.model.as_deref(),
            Some("gpt-4o-mini"),
            "the inner one's"
        );
        assert_eq!(plan.aliases, [(span(1), [3; 8]), (span(2), [3; 8])]);
    }

    /// An LLM span over two LLM spans folds into the last-ending one; the other stays.
    #[test]
    fn an_llm_span_over_two_calls_folds_into_the_last() {
        let plan = plan(
            vec![response(1, 30), response(2, 10), response(3, 20)],
            &[under(1, &[]), under(2, &[1]), under(3, &[1])],
        );
        assert_eq!(kept(&plan), [span(2), span(3)]);
        assert_eq!(plan.aliases, [(span(1), [3; 8])]);
    }

    /// A response whose parent is not in the request: nothing to alias, and the join looks
    /// for a stored response under its parent's id.
    #[test]
    fn a_parent_outside_the_request_is_left_to_the_store() {
        let lineage = Lineage {
            span: span(3),
            parent: Some([2; 8]),
            ancestors: Vec::new(),
        };
        let plan = plan(vec![response(3, 1)], &[lineage]);
        assert_eq!(kept(&plan), [span(3)]);
        assert!(plan.aliases.is_empty());
        assert_eq!(plan.responses[0].parent, Some([2; 8]));
        assert!(!plan.responses[0].parent_in_request);
    }

    #[test]
    fn fill_missing_keeps_what_is_there_and_says_what_changed() {
        let mut into = response(1, 1);
        into.model = Some("a".into());
        let mut from = response(2, 1);
        from.model = Some("b".into());
        assert!(!fill_missing(&mut into, &from));
        from.chunk_ids = Some(vec!["c".into()]);
        assert!(fill_missing(&mut into, &from));
        assert_eq!(into.model.as_deref(), Some("a"));
        assert_eq!(into.chunk_ids, from.chunk_ids);
        assert!(!fill_missing(&mut into, &from), "filled once");
    }
}
