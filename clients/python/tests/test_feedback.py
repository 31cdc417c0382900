"""Feedback through the real receiver: ``POST /v1/feedback`` and feedback spans over OTLP."""

from __future__ import annotations

import time
from typing import Dict, Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from otlp_sink import OtlpSink
from receiver import SECRET, Receiver

import closedloop

TEMPLATE = closedloop.PromptTemplate(
    "answer_with_context", "Answer from the context only.\n\nContext:\n{context}"
)
QUERY = "How do I reset my password?"
# A typo: close enough to be the same question (rephrase), not the same words (regenerate).
REPHRASED = "How can I reset my pasword?"


@pytest.fixture
def provider(receiver: Receiver) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(closedloop.ClosedloopSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.http_url}/v1/traces"))
    )
    yield provider
    provider.shutdown()


def _answer(provider: TracerProvider, session_id: str, query: str = QUERY) -> Dict[str, str]:
    """One generation span inside a turn, as an instrumentation writes it; its response ref."""
    tracer = provider.get_tracer("an.instrumentation")
    with closedloop.turn(session_id=session_id, template=TEMPLATE, query=query) as turn:
        turn.set_chunk_ids(["kb-reset-password#2", "kb-account-locked#0"])
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.id": f"chatcmpl-{session_id}",
            },
        ) as span:
            return closedloop.response_ref(span, SECRET)


def _only_record(sink: OtlpSink) -> Dict[str, object]:
    spans = sink.wait_for(
        lambda spans: any("closedloop.failure.id" in s["attributes"] for s in spans)
    )
    records = list(sink.records().values())
    assert len(records) == 1, spans
    return records[0]


def test_a_thumbs_down_through_the_api_makes_an_enriched_record(
    provider: TracerProvider, receiver: Receiver, sink: OtlpSink
) -> None:
    ref = _answer(provider, "s-api")
    result = closedloop.send_feedback(
        receiver.http_url,
        signal="thumbs_down",
        category="hallucination",
        idempotency_id="fb-1",
        session_id="s-api",
        **ref,
    )
    assert result.feedback_id and not result.duplicate
    record = _only_record(sink)
    attributes = record["attributes"]
    assert record["trace_id"] == ref["trace_id"]
    assert attributes["closedloop.failure.enriched"] is True
    assert attributes["closedloop.failure.response.span_id"] == ref["span_id"]
    assert attributes["closedloop.failure.category"] == "hallucination"
    assert attributes["closedloop.failure.signals"] == ["thumbs_down"]
    assert attributes["closedloop.prompt.template.id"] == TEMPLATE.id
    assert attributes["closedloop.prompt.template.version"] == TEMPLATE.version
    assert attributes["closedloop.prompt.template.hash"] == TEMPLATE.hash
    assert attributes["closedloop.context.chunk_ids"] == [
        "kb-reset-password#2",
        "kb-account-locked#0",
    ]
    # The record names the judged span's model under closedloop's key: no backend may take
    # it for an LLM call.
    assert attributes["closedloop.failure.response.model"] == "gpt-4o-mini"
    assert "gen_ai.request.model" not in attributes
    assert attributes["session.id"] == "s-api"
    (case,) = receiver.evalset()
    assert case["metadata"]["query_fingerprint"] == closedloop.fingerprint(QUERY)
    assert case["metadata"]["template_id"] == TEMPLATE.id
    # The same idempotency id again is counted once.
    again = closedloop.send_feedback(
        receiver.http_url, signal="thumbs_down", idempotency_id="fb-1", **ref
    )
    assert again.duplicate and again.feedback_id == result.feedback_id


def test_the_api_refuses_bad_tokens(provider: TracerProvider, receiver: Receiver) -> None:
    ref = _answer(provider, "s-bad")
    forged = closedloop.issue_feedback_token(
        "another secret of at least thirty-two bytes!",
        ref["trace_id"],
        ref["span_id"],
        time.time() + 60,
    )
    with pytest.raises(closedloop.FeedbackError) as refused:
        closedloop.send_feedback(
            receiver.http_url,
            signal="thumbs_down",
            trace_id=ref["trace_id"],
            span_id=ref["span_id"],
            feedback_token=forged,
        )
    assert (refused.value.status, refused.value.code) == (401, "invalid_token")
    expired = closedloop.issue_feedback_token(
        SECRET, ref["trace_id"], ref["span_id"], time.time() - 1
    )
    with pytest.raises(closedloop.FeedbackError) as refused:
        closedloop.send_feedback(
            receiver.http_url,
            signal="thumbs_down",
            trace_id=ref["trace_id"],
            span_id=ref["span_id"],
            feedback_token=expired,
        )
    assert refused.value.status == 401
    other = closedloop.issue_feedback_token(
        SECRET, ref["trace_id"], "1111111111111111", time.time() + 60
    )
    with pytest.raises(closedloop.FeedbackError) as refused:
        closedloop.send_feedback(
            receiver.http_url,
            signal="thumbs_down",
            trace_id=ref["trace_id"],
            span_id=ref["span_id"],
            feedback_token=other,
        )
    assert (refused.value.status, refused.value.code) == (403, "token_mismatch")
    with pytest.raises(closedloop.FeedbackError) as refused:
        closedloop.send_feedback(receiver.http_url, signal="shrug", **ref)
    assert (refused.value.status, refused.value.code) == (400, "invalid_field")
    assert receiver.records() == []


def test_an_unreachable_receiver_is_an_error() -> None:
    with pytest.raises(closedloop.FeedbackError) as refused:
        closedloop.send_feedback(
            "http://127.0.0.1:9",
            signal="thumbs_up",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            feedback_token="x",
            timeout_secs=2,
        )
    assert refused.value.status == 0


def test_a_feedback_span_over_otlp_makes_an_enriched_record(
    provider: TracerProvider, receiver: Receiver, sink: OtlpSink
) -> None:
    ref = _answer(provider, "s-span")
    closedloop.record_feedback(
        ref["trace_id"],
        ref["span_id"],
        "thumbs_down",
        category="wrong_answer",
        tracer_provider=provider,
    )
    record = _only_record(sink)
    attributes = record["attributes"]
    assert attributes["closedloop.failure.enriched"] is True
    assert attributes["closedloop.failure.response.span_id"] == ref["span_id"]
    assert attributes["closedloop.failure.category"] == "wrong_answer"
    assert attributes["session.id"] == "s-span"
    judged = [
        link
        for link in record["links"]
        if link["attributes"].get("closedloop.link.type") == "judged_response"
    ]
    assert [(link["trace_id"], link["span_id"]) for link in judged] == [
        (ref["trace_id"], ref["span_id"])
    ]


def test_the_same_question_twice_is_a_regenerate_and_a_rephrasing_a_rephrase(
    provider: TracerProvider, receiver: Receiver, sink: OtlpSink
) -> None:
    first = _answer(provider, "s-again", "How do I reset my password?")
    _answer(provider, "s-again", "How do I reset my password?")
    rephrased = _answer(provider, "s-other", "How do I reset my password?")
    _answer(provider, "s-other", REPHRASED)
    sink.wait_for(lambda spans: len(sink.records()) >= 2)
    signals = {
        r["attributes"]["closedloop.failure.response.span_id"]: r["attributes"][
            "closedloop.failure.signals"
        ]
        for r in sink.records().values()
    }
    assert signals == {first["span_id"]: ["regenerate"], rephrased["span_id"]: ["rephrase"]}
