"""Emits a generation span and a feedback span about it with the OpenTelemetry Python SDK.

Used by closedloop's interoperability test: an application instrumented with the official
SDK, exporting over OTLP (gRPC or HTTP/protobuf) straight to the closedloop receiver.

    python emit_feedback.py grpc http://127.0.0.1:4317
    python emit_feedback.py http http://127.0.0.1:4318/v1/traces

Follows closedloop's feedback rule: the feedback span lives in the judged response's trace and
carries exactly one span link, to the judged span, with closedloop.link.type=judged_response.
Prints the judged span's ids as JSON on stdout.
"""

import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind


def exporter(protocol: str, endpoint: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint)
    raise SystemExit(f"unknown protocol {protocol!r}; use grpc or http")


def main() -> None:
    protocol, endpoint = sys.argv[1], sys.argv[2]
    provider = TracerProvider(resource=Resource.create({"service.name": "python-rag-app"}))
    provider.add_span_processor(BatchSpanProcessor(exporter(protocol, endpoint)))
    tracer = provider.get_tracer("closedloop-interop-test")

    # The answer: an inference span with GenAI and closedloop enrichment attributes.
    with tracer.start_as_current_span("answer_question"):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.response.id": "chatcmpl-python-interop",
                "gen_ai.data_source.id": "kb-support",
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 96,
                "closedloop.prompt.template.id": "answer_with_context",
                "closedloop.prompt.template.version": "v3",
                "closedloop.prompt.template.hash": "sha256:" + "4f2a9c0d1e7b5a6c" * 4,
                "closedloop.context.chunk_ids": ["kb-reset-password#2", "kb-account-locked#0"],
                "closedloop.retrieval.index.version": "2026-11-20",
                "session.id": "sess-python-1",
            },
        ) as generation:
            judged = generation.get_span_context()

    # Later, the user's thumbs-down: a new span in the same trace, linked to the judged span.
    feedback = tracer.start_span(
        "feedback thumbs_down",
        context=trace.set_span_in_context(NonRecordingSpan(judged)),
        kind=SpanKind.INTERNAL,
        links=[Link(judged, {"closedloop.link.type": "judged_response"})],
        attributes={
            "closedloop.feedback.signal": "thumbs_down",
            "closedloop.feedback.kind": "explicit",
            "closedloop.feedback.source": "user",
            "closedloop.feedback.value": 0.0,
            "closedloop.feedback.id": "fb-python-interop-1",
            "closedloop.failure.category": "hallucination",
            "gen_ai.evaluation.name": "user_feedback",
            "gen_ai.evaluation.score.value": 0.0,
            "gen_ai.response.id": "chatcmpl-python-interop",
            "session.id": "sess-python-1",
        },
    )
    feedback.end()

    provider.force_flush()
    provider.shutdown()
    print(
        json.dumps(
            {
                "trace_id": format(judged.trace_id, "032x"),
                "span_id": format(judged.span_id, "016x"),
            }
        )
    )


if __name__ == "__main__":
    main()
