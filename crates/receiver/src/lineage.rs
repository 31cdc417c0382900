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
