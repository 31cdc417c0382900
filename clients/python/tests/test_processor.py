"""ClosedloopSpanProcessor on the real OpenTelemetry SDK, read back with its in-memory exporter."""

from __future__ import annotations

import asyncio
from typing import Iterator, Tuple

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import closedloop
from closedloop import ClosedloopSpanProcessor, PromptTemplate, fingerprint, turn

TEMPLATE = PromptTemplate("answer_with_context", "Context:\n{context}\n\nQuestion: {question}")


@pytest.fixture
def traced() -> Iterator[Tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ClosedloopSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_spans_inside_a_turn_carry_its_attributes(traced) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("some.instrumentation")
    query = "How do I reset my password?"
    with turn(session_id="s-1", user_id="u-1", template=TEMPLATE, query=query, turn_index=2) as t:
        with tracer.start_as_current_span("retrieval product-docs"):
            pass
        t.set_chunk_ids(["kb-reset#0", "kb-locked#1"])
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", attributes={"gen_ai.operation.name": "chat"}
        ):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    chat = spans["chat gpt-4o-mini"]
    assert chat["session.id"] == "s-1"
    assert chat["user.id"] == "u-1"
    assert chat["closedloop.prompt.template.id"] == "answer_with_context"
    assert chat["closedloop.prompt.template.version"] == TEMPLATE.version
    assert chat["closedloop.prompt.template.hash"] == TEMPLATE.hash
    assert chat["closedloop.query.fingerprint"] == fingerprint(query)
    assert chat["closedloop.context.chunk_ids"] == ("kb-reset#0", "kb-locked#1")
    assert chat["closedloop.turn.index"] == 2
    assert chat["gen_ai.operation.name"] == "chat"
    # Chunk ids set after retrieval reach only the spans started after them.
    assert "closedloop.context.chunk_ids" not in spans["retrieval product-docs"]
    assert spans["retrieval product-docs"]["session.id"] == "s-1"
    assert not any(key.startswith("closedloop.") or key == "session.id" for key in spans["outside"])


def test_no_attribute_holds_the_query_text(traced) -> None:
    provider, exporter = traced
    query = "my very private question about invoices"
    with turn(session_id="s-2", query=query):
        provider.get_tracer("t").start_span("chat").end()
    (span,) = exporter.get_finished_spans()
    for value in (span.attributes or {}).values():
        assert "private" not in str(value)


def test_an_instrumentations_own_value_wins(traced) -> None:
    provider, exporter = traced
    with turn(session_id="from-the-turn"):
        provider.get_tracer("t").start_span("chat", attributes={"session.id": "own"}).end()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["session.id"] == "own"


def test_turns_nest_and_restore(traced) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("t")
    with turn(session_id="outer", template=TEMPLATE):
        with turn(query="cancel my subscription"):
            tracer.start_span("inner").end()
        assert closedloop.current_turn() is not None
        tracer.start_span("after").end()
    assert closedloop.current_turn() is None
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    assert spans["inner"]["session.id"] == "outer"
    assert spans["inner"]["closedloop.prompt.template.id"] == "answer_with_context"
    assert "closedloop.query.fingerprint" in spans["inner"]
    assert "closedloop.query.fingerprint" not in spans["after"]


def test_turns_follow_asyncio_tasks(traced) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("t")

    async def answer(session: str) -> None:
        with turn(session_id=session):
            await asyncio.sleep(0)
            tracer.start_span(f"chat {session}").end()

    async def main() -> None:
        await asyncio.gather(answer("a"), answer("b"))

    asyncio.run(main())
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    assert spans["chat a"]["session.id"] == "a"
    assert spans["chat b"]["session.id"] == "b"


def test_record_feedback_links_the_judged_span(traced) -> None:
    provider, exporter = traced
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    closedloop.record_feedback(
        trace_id,
        span_id,
        "thumbs_down",
        category="hallucination",
        comment="It quoted the old policy.",
        feedback_id="fb-1",
        tracer_provider=provider,
    )
    (span,) = exporter.get_finished_spans()
    assert span.name == "feedback thumbs_down"
    assert format(span.context.trace_id, "032x") == trace_id
    assert format(span.parent.span_id, "016x") == span_id
    (link,) = span.links
    assert format(link.context.trace_id, "032x") == trace_id
    assert format(link.context.span_id, "016x") == span_id
    assert dict(link.attributes) == {"closedloop.link.type": "judged_response"}
    attributes = dict(span.attributes)
    assert attributes["closedloop.feedback.signal"] == "thumbs_down"
    assert attributes["closedloop.feedback.kind"] == "explicit"
    assert attributes["closedloop.feedback.source"] == "user"
    assert attributes["closedloop.feedback.value"] == 0.0
    assert attributes["gen_ai.evaluation.name"] == "closedloop.feedback.thumbs_down"
    assert attributes["gen_ai.evaluation.score.label"] == "fail"
    assert attributes["closedloop.failure.category"] == "hallucination"
    assert attributes["closedloop.feedback.id"] == "fb-1"
    # A comment is content: exported only when asked.
    assert "closedloop.feedback.comment" not in attributes


def test_record_feedback_defaults_follow_the_signal(traced) -> None:
    provider, exporter = traced
    closedloop.record_feedback(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "rephrase", tracer_provider=provider
    )
    closedloop.record_feedback(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "rating",
        value=0.75,
        comment="fine",
        capture_comment=True,
        tracer_provider=provider,
    )
    rephrase, rating = (dict(span.attributes) for span in exporter.get_finished_spans())
    assert (rephrase["closedloop.feedback.kind"], rephrase["closedloop.feedback.source"]) == (
        "implicit",
        "detector",
    )
    assert rating["gen_ai.evaluation.score.label"] == "pass"
    assert rating["closedloop.feedback.comment"] == "fine"
    with pytest.raises(ValueError):
        closedloop.record_feedback(
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "rating", value=2.0
        )


def test_response_ref_names_the_span_with_a_token_for_it(traced) -> None:
    provider, _ = traced
    with provider.get_tracer("t").start_as_current_span("POST /chat") as span:
        ref = closedloop.response_ref(span, "s" * 32, ttl_secs=60)
    context = span.get_span_context()
    assert ref["trace_id"] == format(context.trace_id, "032x")
    assert ref["span_id"] == format(context.span_id, "016x")
    verified = closedloop.verify_feedback_token("s" * 32, ref["feedback_token"])
    assert (verified.trace_id, verified.span_id) == (ref["trace_id"], ref["span_id"])
