"""An OTLP/HTTP traces endpoint on 127.0.0.1:0 that keeps what it receives: the receiver's
exported failure records, decoded with the OpenTelemetry protobuf bindings."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


class OtlpSink:
    """Collects spans; ``spans`` holds one dict per span (name, ids, attributes, links)."""

    def __init__(self) -> None:
        self.spans: List[Dict[str, Any]] = []
        self.raw: List[bytes] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                sink._add(body, request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "OtlpSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _add(self, body: bytes, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                            "links": [
                                {
                                    "trace_id": link.trace_id.hex(),
                                    "span_id": link.span_id.hex(),
                                    "attributes": {
                                        kv.key: _value(kv.value) for kv in link.attributes
                                    },
                                }
                                for link in span.links
                            ],
                        }
                    )
        with self._lock:
            self.raw.append(body)
            self.spans.extend(spans)

    def wait_for(
        self, predicate: Callable[[List[Dict[str, Any]]], bool], timeout_secs: float = 30.0
    ) -> List[Dict[str, Any]]:
        """Polls until ``predicate(spans)`` holds or the time is up; returns the spans."""
        deadline = time.monotonic() + timeout_secs
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    def records(self) -> Dict[str, Dict[str, Any]]:
        """The newest revision of each exported failure record, by record id."""
        newest: Dict[str, Dict[str, Any]] = {}
        with self._lock:
            spans = list(self.spans)
        for span in spans:
            attributes = span["attributes"]
            record_id = attributes.get("closedloop.failure.id")
            if record_id is None:
                continue
            current = newest.get(record_id)
            if current is None or attributes.get("closedloop.failure.revision", 0) >= current[
                "attributes"
            ].get("closedloop.failure.revision", 0):
                newest[record_id] = span
        return newest
