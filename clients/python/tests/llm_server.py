"""A deterministic OpenAI-compatible server for the tests, on 127.0.0.1:0 (stdlib only).

It answers ``POST /v1/chat/completions`` (plain and streamed) and ``POST /v1/embeddings``
(float lists or base64, as the openai client asks). Answers quote the last user message;
embeddings are hashed bags of words, so a retriever finds the chunk that shares words with
the question.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

DIMENSIONS = 64
ANSWER_PREFIX = "Per the knowledge base:"


def embed(text: str) -> List[float]:
    """A unit vector of hashed word counts."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        vector[digest[0] % DIMENSIONS] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class LlmServer:
    """The server; ``base_url`` is what ``OPENAI_BASE_URL`` takes."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.requests: List[Dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "invalid json"}})
                    return
                path = self.path.split("?")[0].rstrip("/")
                server.requests.append({"path": path, "body": body})
                if path.endswith("/chat/completions"):
                    server._chat(self, body)
                elif path.endswith("/embeddings"):
                    self._send(200, server._embeddings(body))
                else:
                    self._send(404, {"error": {"message": f"no route {path}"}})

            def _send(self, status: int, payload: Dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._Handler = Handler
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "LlmServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, messages: List[Dict[str, Any]]) -> str:
        question = ""
        for message in messages:
            if message.get("role") == "user":
                question = _text(message.get("content"))
        return f"{ANSWER_PREFIX} {question.strip()}"

    def _chat(self, handler: BaseHTTPRequestHandler, body: Dict[str, Any]) -> None:
        model = str(body.get("model") or "gpt-4o-mini")
        answer = self._answer(body.get("messages") or [])
        response_id = f"chatcmpl-{next(self._ids)}"
        created = int(time.time())
        prompt_tokens = sum(
            len(_text(m.get("content")).split()) for m in body.get("messages") or []
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(answer.split()),
            "total_tokens": prompt_tokens + len(answer.split()),
        }
        if not body.get("stream"):
            handler._send(  # type: ignore[attr-defined]
                200,
                {
                    "id": response_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()

        def chunk(delta: Dict[str, Any], finish: Optional[str], extra: Dict[str, Any]) -> None:
            payload = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            payload.update(extra)
            handler.wfile.write(f"data: {json.dumps(payload)}\n\n".encode("utf-8"))

        chunk({"role": "assistant", "content": ""}, None, {})
        for word in answer.split(" "):
            chunk({"content": word + " "}, None, {})
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        chunk({}, "stop", {"usage": usage} if include_usage else {})
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        handler.close_connection = True

    def _embeddings(self, body: Dict[str, Any]) -> Dict[str, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = []
        for index, text in enumerate(texts):
            vector = embed(text if isinstance(text, str) else " ".join(map(str, text)))
            if body.get("encoding_format") == "base64":
                value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                value = vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model") or "text-embedding-3-small",
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }
