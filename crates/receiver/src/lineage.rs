//! Where each response span of one export request sits in its trace: its parent, and its
//! ancestors the same request holds (see `closedloop_engine::lineage`). One pass over the
//! request's spans, in memory, and only for requests that carry a response.

use std::collections::HashMap;

use closedloop_engine::lineage::{Lineage, MAX_ANCESTORS};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::records::{SpanId, SpanRef};
use crate::store::IngestBatch;

/// The parent span id of a span, `None` for a root span (or a malformed id).
fn parent_id(parent_span_id: &[u8]) -> Option<SpanId> {
    let id: SpanId = parent_span_id.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

/// Gives `batch` the lineage of each of its responses within `request`.
pub(crate) fn read(request: &ExportTraceServiceRequest, batch: &mut IngestBatch) {
    if batch.responses.is_empty() {
        return;
    }
    // Every span of the request, by its ids, with its parent span id.
    let mut parents: HashMap<SpanRef, Option<SpanId>> = HashMap::new();
    for resource_spans in &request.resource_spans {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                if let Some(span_ref) = SpanRef::from_bytes(&span.trace_id, &span.span_id) {
                    parents.insert(span_ref, parent_id(&span.parent_span_id));
                }
            }
        }
    }
    for response in &batch.responses {
        let Some(span) = response.span else { continue };
        let parent = parents.get(&span).copied().flatten();
        let mut ancestors = Vec::new();
        let mut next = parent;
        while let Some(id) = next {
            let Some(ancestor) = SpanRef::new(span.trace_id, id) else {
                break;
            };
            // Only ancestors the request holds; a loop of malformed parents ends at the bound.
            let Some(&above) = parents.get(&ancestor) else {
                break;
            };
            if ancestor == span || ancestors.len() == MAX_ANCESTORS || ancestors.contains(&id) {
                break;
            }
            ancestors.push(id);
            next = above;
        }
        batch.lineage.push(Lineage {
            span,
            parent,
            ancestors,
        });
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::records::Response;

    const TRACE: [u8; 16] = [3; 16];

    fn span(n: u8, parent: u8) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![n; 8],
            parent_span_id: if parent == 0 {
                Vec::new()
            } else {
                vec![parent; 8]
            },
            ..Default::default()
        }
    }

    fn lineage_of(spans: Vec<Span>, responses: &[u8]) -> Vec<Lineage> {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut batch = IngestBatch::default();
        for &n in responses {
            batch.responses.push(Response {
                span: SpanRef::new(TRACE, [n; 8]),
                ..Default::default()
            });
        }
        read(&request, &mut batch);
        batch.lineage
    }

    #[test]
    fn ancestors_are_those_the_request_holds_nearest_first() {
        // server 1 > chain 2 > llm 3; llm 5 under 4, which the request does not hold.
        let lineage = lineage_of(
            vec![span(1, 0), span(2, 1), span(3, 2), span(5, 4)],
            &[3, 5],
        );
        assert_eq!(lineage[0].parent, Some([2; 8]));
        assert_eq!(lineage[0].ancestors, [[2; 8], [1; 8]]);
        assert_eq!(lineage[1].parent, Some([4; 8]));
        assert!(lineage[1].ancestors.is_empty());
    }

    #[test]
    fn a_loop_of_parents_ends() {
        let lineage = lineage_of(vec![span(1, 2), span(2, 1), span(3, 3)], &[1, 3]);
        assert_eq!(lineage[0].ancestors, [[2; 8]]);
        assert!(lineage[1].ancestors.is_empty(), "its own parent");
    }

    #[test]
    fn a_request_without_responses_costs_nothing() {
        assert!(lineage_of(vec![span(1, 0), span(2, 1)], &[]).is_empty());
    }
}
