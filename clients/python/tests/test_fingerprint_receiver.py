"""The client's fingerprints against the receiver's, on scripts the shared vectors leave out.

The receiver fingerprints the query it finds in a span's input messages with the Rust
function; for each query here the eval set must show the fingerprint this package computes
(combining marks Rust counts as letters, circled letters, Roman numerals, final sigma).
"""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from receiver import SECRET, Receiver

import closedloop

QUERIES = [
    "पासवर्ड कैसे बदलें",
    "தமிழ் கேள்வி எப்படி",
    "ⓐⓑⓒ circled letters",
    "Ⅻ roman ⅻ numerals",
    "ΣΊΣΥΦΟΣ ὀδυσσεύς",
    "كيف أغير كلمة المرور",
]


def test_the_receiver_derives_the_same_fingerprints(receiver: Receiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.http_url}/v1/traces"))
    )
    tracer = provider.get_tracer("an.instrumentation")
    want = {}
    for query in QUERIES:
        messages = [{"role": "user", "parts": [{"type": "text", "content": query}]}]
        with tracer.start_as_current_span(
            "chat m",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m",
                "gen_ai.input.messages": json.dumps(messages),
            },
        ) as span:
            ref = closedloop.response_ref(span, SECRET)
        want[ref["trace_id"]] = closedloop.fingerprint(query)
        closedloop.send_feedback(receiver.http_url, signal="thumbs_down", **ref)
    provider.shutdown()
    receiver.wait_for_records(len(QUERIES))
    got = {
        source["trace_id"]: case["metadata"]["query_fingerprint"]
        for case in receiver.evalset()
        for source in case["metadata"]["sources"]
    }
    assert got == want
