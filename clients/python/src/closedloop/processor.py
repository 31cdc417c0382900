"""Adds closedloop's attributes to the spans of any instrumentation, inside a turn.

The application marks one user turn (one question and its answer) with :func:`turn`; every
span started inside it, by any instrumentation (OpenInference, OpenLLMetry, the OpenTelemetry
GenAI instrumentations, the app's own), gets the turn's session, template id, version and
hash, chunk ids and query fingerprint from :class:`ClosedloopSpanProcessor`. The query text is
never written: only its fingerprint. The semantic fingerprint of the query's embedding is
written only when the application gives one and the processor captures it.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from . import attributes as attr
from .fingerprint import fingerprint
from .semantic import SemanticHasher
from .template import PromptTemplate

__all__ = ["ClosedloopSpanProcessor", "Turn", "current_turn", "turn"]


@dataclass
class Turn:
    """What closedloop should know about the current user turn.

    Yielded by :func:`turn`; the setters change what spans started after them carry (chunk ids
    are often known only once retrieval has run).
    """

    session_id: Optional[str] = None
    user_id: Optional[str] = None
    template: Optional[PromptTemplate] = None
    query_fingerprint: Optional[str] = None
    chunk_ids: Optional[List[str]] = None
    index_version: Optional[str] = None
    turn_index: Optional[int] = None
    query_semantic_fingerprint: Optional[str] = None
    _parent: Optional["Turn"] = field(default=None, repr=False)

    def set_chunk_ids(self, chunk_ids: Sequence[str]) -> None:
        """The ids of the chunks placed in the prompt, in prompt order."""
        self.chunk_ids = [str(chunk_id) for chunk_id in chunk_ids]

    def set_query(self, query: str) -> None:
        """Fingerprints the user's query; the text is not kept."""
        self.query_fingerprint = fingerprint(query)

    def set_query_embedding(self, hasher: SemanticHasher, embedding: Iterable[float]) -> None:
        """Fingerprints the query's embedding (the one the app computed for retrieval) with
        ``hasher``; the vector is not kept. The fingerprint still tells roughly what the query
        is about, so it is content: only a processor built with
        ``capture_query_embedding=True`` writes it."""
        self.query_semantic_fingerprint = hasher.fingerprint(embedding)

    def set_template(self, template: PromptTemplate) -> None:
        """The prompt template the answer is rendered from."""
        self.template = template

    def attributes(self, *, capture_query_embedding: bool = False) -> Dict[str, AttributeValue]:
        """The span attributes of this turn (values of an enclosing turn fill the gaps); the
        semantic fingerprint only with ``capture_query_embedding``."""
        inherited = (
            self._parent.attributes(capture_query_embedding=capture_query_embedding)
            if self._parent is not None
            else {}
        )
        own: Dict[str, AttributeValue] = {}
        if self.session_id is not None:
            own[attr.SESSION_ID] = self.session_id
        if self.user_id is not None:
            own[attr.USER_ID] = self.user_id
        if self.template is not None:
            own[attr.PROMPT_TEMPLATE_ID] = self.template.id
            own[attr.PROMPT_TEMPLATE_VERSION] = self.template.version
            own[attr.PROMPT_TEMPLATE_HASH] = self.template.hash
        if self.chunk_ids is not None:
            own[attr.CONTEXT_CHUNK_IDS] = list(self.chunk_ids)
        if self.index_version is not None:
            own[attr.RETRIEVAL_INDEX_VERSION] = self.index_version
        if self.query_fingerprint is not None:
            own[attr.QUERY_FINGERPRINT] = self.query_fingerprint
        if capture_query_embedding and self.query_semantic_fingerprint is not None:
            own[attr.QUERY_SEMANTIC_FINGERPRINT] = self.query_semantic_fingerprint
        if self.turn_index is not None:
            own[attr.TURN_INDEX] = self.turn_index
        inherited.update(own)
        return inherited


_CURRENT: "contextvars.ContextVar[Optional[Turn]]" = contextvars.ContextVar(
    "closedloop_turn", default=None
)


def current_turn() -> Optional[Turn]:
    """The innermost :func:`turn` active in this context, if any."""
    return _CURRENT.get()


@contextmanager
def turn(
    *,
    session_id: Optional[str] = None,
    template: Optional[PromptTemplate] = None,
    query: Optional[str] = None,
    chunk_ids: Optional[Sequence[str]] = None,
    user_id: Optional[str] = None,
    index_version: Optional[str] = None,
    turn_index: Optional[int] = None,
) -> Iterator[Turn]:
    """Marks one user turn; spans started inside it carry closedloop's attributes.

    ``query`` is fingerprinted here and the text dropped. Turns nest: an inner turn adds to
    (and overrides) the attributes of the outer one. The state lives in a context variable,
    so it follows ``asyncio`` tasks; a worker thread needs ``contextvars.copy_context()``.

    >>> from closedloop import PromptTemplate, turn
    >>> with turn(session_id="s-1", template=PromptTemplate("answer", "Q: {q}")) as t:
    ...     t.attributes()["closedloop.prompt.template.id"]
    'answer'
    """
    state = Turn(
        session_id=session_id,
        user_id=user_id,
        template=template,
        query_fingerprint=fingerprint(query) if query is not None else None,
        chunk_ids=[str(c) for c in chunk_ids] if chunk_ids is not None else None,
        index_version=index_version,
        turn_index=turn_index,
        _parent=_CURRENT.get(),
    )
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


class ClosedloopSpanProcessor(SpanProcessor):
    """Writes the current turn's attributes onto every span as it starts.

    Add it to the tracer provider before the exporting processor::

        provider.add_span_processor(ClosedloopSpanProcessor())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

    An attribute the span already has (an instrumentation's own ``session.id``, say) is
    left as it is, and one set later overwrites the turn's value.

    ``capture_query_embedding=True`` also writes the semantic fingerprint a turn got from
    :meth:`Turn.set_query_embedding` (``closedloop.query.semantic_fingerprint``). It is off
    by default, like content: the vector never leaves, but the hash tells roughly what the
    query is about.
    """

    def __init__(self, *, capture_query_embedding: bool = False) -> None:
        self._capture_query_embedding = capture_query_embedding

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        state = _CURRENT.get()
        if state is None:
            return
        present = span.attributes or {}
        values: Dict[str, AttributeValue] = {
            key: value
            for key, value in state.attributes(
                capture_query_embedding=self._capture_query_embedding
            ).items()
            if key not in present
        }
        if values:
            span.set_attributes(values)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
