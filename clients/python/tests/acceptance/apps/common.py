"""What every acceptance app shares: the knowledge base, the tracer provider with
closedloop's span processor, and the request loop of a web handler.

An app reads its scenario (JSON) on standard input: turns of ``{"session", "question",
"thumbs_down"}``. Each turn is one request: the app's own server span (the only span the app
holds, as a web handler would), inside it one :func:`closedloop.turn` and the library's call.
After all turns it flushes its spans, sends each thumbs-down to the receiver's
``/v1/feedback`` with a token minted for the request span, and writes a JSON list, one object
per turn, to the file ``CLOSEDLOOP_APP_RESULTS`` names (standard output is the libraries').
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

import closedloop

MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"

TEMPLATE = closedloop.PromptTemplate(
    "support_answer",
    "You are a support assistant. Answer from the context only.\n\nContext:\n{context}",
)

# The knowledge base: (chunk id, text).
KB: List[Tuple[str, str]] = [
    ("kb-reset-password#0", "Reset your password under Settings, Security, Reset password."),
    ("kb-cancel-subscription#0", "Cancel your subscription under Billing, Cancel plan."),
    ("kb-export-data#0", "Export your data as CSV under Reports, Export."),
    ("kb-two-factor#0", "Two-factor authentication is under Settings, Security, Two-factor."),
]

# Without a retriever, the context is fixed.
STATIC_CONTEXT = "\n".join(text for _, text in KB)

Answer = Callable[[str], Tuple[str, Optional[List[str]]]]
"""Answers a question: the answer and the ids of the chunks placed in the prompt, if any."""


def receiver_url() -> str:
    return os.environ["CLOSEDLOOP_RECEIVER_URL"]


def exporter() -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{receiver_url()}/v1/traces")


def tracer_provider(service: str) -> TracerProvider:
    """A provider exporting to the receiver, with closedloop's processor, set as the global."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(closedloop.ClosedloopSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    return provider


def serve(answer: Answer, flush: Callable[[], object]) -> None:
    """Runs the scenario on standard input; writes what happened to ``CLOSEDLOOP_APP_RESULTS``."""
    scenario = json.loads(sys.stdin.read())
    tracer = trace.get_tracer("acceptance.app")
    secret = os.environ["CLOSEDLOOP_FEEDBACK_SECRET"]
    results: List[Dict[str, object]] = []
    for step in scenario["turns"]:
        with tracer.start_as_current_span(
            "POST /chat",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "http.route": "/chat"},
        ) as request:
            with closedloop.turn(session_id=step["session"], template=TEMPLATE):
                text, chunk_ids = answer(step["question"])
            ref = closedloop.response_ref(request, secret)
        results.append({**step, **ref, "answer": text, "chunk_ids": chunk_ids})
    flush()
    for result in results:
        if result.get("thumbs_down"):
            sent = closedloop.send_feedback(
                receiver_url(),
                trace_id=str(result["trace_id"]),
                span_id=str(result["span_id"]),
                feedback_token=str(result["feedback_token"]),
                signal="thumbs_down",
                session_id=str(result["session"]),
            )
            result["feedback_id"] = sent.feedback_id
    with open(os.environ["CLOSEDLOOP_APP_RESULTS"], "w", encoding="utf-8") as out:
        json.dump(results, out)
