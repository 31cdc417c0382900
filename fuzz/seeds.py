#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into DIR/<target>/ (standard library only).

The seeds are small valid inputs, so the fuzzer starts from the shapes the receiver reads:
an LLM response span and a feedback span linked to it (protobuf and OTLP/JSON, plain and
gzip), feedback API bodies, and configuration files.

Usage: fuzz/seeds.py DIR
"""

import gzip
import json
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
GENERATION_SPAN_ID = bytes.fromhex("00f067aa0ba902b7")
FEEDBACK_SPAN_ID = bytes.fromhex("00f067aa0ba902b8")
RETRIEVAL_SPAN_ID = bytes.fromhex("00f067aa0ba902b9")
START_NS = 1_767_225_600_000_000_000

# Each seed of the OTLP targets starts with the flags byte: bit 0 set means gzip.
PLAIN, GZIP = b"\x00", b"\x01"


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field (wire type 2)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def fixed64(number, value):
    return varint(number << 3 | 1) + struct.pack("<Q", value)


def integer(number, value):
    return varint(number << 3) + varint(value)


# (key, kind, value) attributes; kind is string, int, double or strings.
GENERATION_ATTRIBUTES = [
    ("gen_ai.operation.name", "string", "chat"),
    ("gen_ai.provider.name", "string", "openai"),
    ("gen_ai.request.model", "string", "gpt-4o"),
    ("gen_ai.response.id", "string", "chatcmpl-0123456789abcdef"),
    ("gen_ai.usage.input_tokens", "int", 812),
    ("gen_ai.request.temperature", "double", 0.2),
    ("closedloop.prompt.template.id", "string", "answer_with_context"),
    ("closedloop.prompt.template.version", "string", "v3"),
    ("closedloop.context.chunk_ids", "strings", ["kb-billing#3", "kb-refund-policy#1"]),
    ("gen_ai.data_source.id", "string", "product-docs"),
    ("session.id", "string", "sess-0000002a"),
]
RETRIEVAL_ATTRIBUTES = [
    ("gen_ai.operation.name", "string", "retrieval"),
    ("closedloop.retrieval.stage", "string", "retrieve"),
    ("closedloop.retrieval.chunk_ids", "strings", ["kb-billing#3", "kb-refund-policy#1"]),
]
FEEDBACK_ATTRIBUTES = [
    ("closedloop.feedback.signal", "string", "thumbs_down"),
    ("closedloop.feedback.source", "string", "user"),
    ("closedloop.feedback.value", "double", 0.0),
    ("closedloop.failure.category", "string", "hallucination"),
]
LINK_ATTRIBUTES = [("closedloop.link.type", "string", "judged_response")]


def any_value(kind, value):
    if kind == "string":
        return field(1, value)
    if kind == "int":
        return integer(3, value)
    if kind == "double":
        return varint(4 << 3 | 1) + struct.pack("<d", value)
    if kind == "strings":
        return field(5, b"".join(field(1, field(1, item)) for item in value))
    raise ValueError(kind)


def key_value(key, kind, value):
    return field(1, key) + field(2, any_value(kind, value))


def span_proto(span_id, name, attributes, parent=None, link=None):
    out = field(1, TRACE_ID) + field(2, span_id)
    if parent:
        out += field(4, parent)
    out += field(5, name) + integer(6, 3)
    out += fixed64(7, START_NS) + fixed64(8, START_NS + 1_250_000_000)
    out += b"".join(field(9, key_value(*attribute)) for attribute in attributes)
    if link:
        linked = field(1, TRACE_ID) + field(2, link)
        linked += b"".join(field(4, key_value(*attribute)) for attribute in LINK_ATTRIBUTES)
        out += field(13, linked)
    return out


def request_proto(spans):
    resource = field(1, key_value("service.name", "string", "rag-app"))
    scope = field(1, field(1, "closedloop-tracing"))
    scope_spans = scope + b"".join(field(2, span) for span in spans)
    return field(1, field(1, resource) + field(2, scope_spans))


def json_value(kind, value):
    if kind == "string":
        return {"stringValue": value}
    if kind == "int":
        return {"intValue": str(value)}
    if kind == "double":
        return {"doubleValue": value}
    return {"arrayValue": {"values": [{"stringValue": item} for item in value]}}


def json_attributes(attributes):
    return [{"key": key, "value": json_value(kind, value)} for key, kind, value in attributes]


def span_json(span_id, name, attributes, parent=None, link=None):
    span = {
        "traceId": TRACE_ID.hex(),
        "spanId": span_id.hex(),
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": START_NS + 1_250_000_000,
        "attributes": json_attributes(attributes),
    }
    if parent:
        span["parentSpanId"] = parent.hex()
    else:
        span["parentSpanId"] = None
    if link:
        span["links"] = [
            {
                "traceId": TRACE_ID.hex().upper(),
                "spanId": link.hex(),
                "attributes": json_attributes(LINK_ATTRIBUTES),
            }
        ]
    return span


def request_json(spans):
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": json_attributes([("service.name", "string", "rag-app")])},
                    "scopeSpans": [{"scope": {"name": "closedloop-tracing"}, "spans": spans}],
                }
            ]
        },
        separators=(",", ":"),
    ).encode()


def otlp_seeds(span, request):
    generation = span(GENERATION_SPAN_ID, "chat gpt-4o", GENERATION_ATTRIBUTES, parent=RETRIEVAL_SPAN_ID)
    retrieval = span(RETRIEVAL_SPAN_ID, "retrieval product-docs", RETRIEVAL_ATTRIBUTES)
    feedback = span(FEEDBACK_SPAN_ID, "feedback thumbs_down", FEEDBACK_ATTRIBUTES, link=GENERATION_SPAN_ID)
    whole = request([retrieval, generation, feedback])
    return {
        "response": PLAIN + request([generation]),
        "trace": PLAIN + whole,
        "feedback": PLAIN + request([feedback]),
        "trace-gzip": GZIP + gzip.compress(whole, mtime=0),
        "empty": PLAIN,
    }


def feedback_body_seeds():
    ids = {"trace_id": TRACE_ID.hex(), "span_id": GENERATION_SPAN_ID.hex()}
    traceparent = f"00-{TRACE_ID.hex()}-{GENERATION_SPAN_ID.hex()}-01"
    bodies = {
        "thumbs": {"response": ids, "signal": "thumbs_down", "feedback_token": "AQ", "idempotency_id": "fb-1"},
        "rating": {
            "traceparent": traceparent,
            "signal": "rating",
            "rating": 4,
            "scale": 5,
            "category": "wrong_answer",
            "comment": "The refund window is thirty days, not fourteen.",
            "feedback_token": "AQ",
        },
        "nested": {
            "response": dict(ids, traceparent=traceparent, feedback_token="AQ"),
            "signal": "copy",
            "value": 1.0,
            "session_id": "sess-1",
            "response_id": "chatcmpl-1",
        },
    }
    return {name: json.dumps(body).encode() for name, body in bodies.items()}


def config_seeds():
    return {
        "example": (ROOT / "closedloop.example.toml").read_bytes(),
        "small": b'[server]\nmax_http_body_mib = 4\n\n[feedback]\ntoken_secret = "0123456789abcdef0123456789abcdef"\nallowed_origins = ["https://app.example.com"]\n\n[store]\npath = "closedloop.db"\n',
        "empty": b"",
    }


def token_seeds():
    # The token target reads structured input (see fuzz_targets/feedback_token.rs); any bytes
    # decode, so a few distinct byte patterns are enough to start from.
    return {
        "zeros": bytes(128),
        "counting": bytes(range(128)),
        "secret": b"0123456789abcdef0123456789abcdef" + bytes(range(1, 97)),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    targets = {
        "otlp_protobuf": otlp_seeds(span_proto, request_proto),
        "otlp_json": otlp_seeds(span_json, request_json),
        "feedback_body": feedback_body_seeds(),
        "feedback_token": token_seeds(),
        "config": config_seeds(),
    }
    for target, seeds in targets.items():
        directory = out / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
