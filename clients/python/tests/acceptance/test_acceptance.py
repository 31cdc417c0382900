"""The whole loop with the real instrumentation libraries from PyPI.

Each app (``apps/``) runs in its own process, with its library's environment, against the
OpenAI-compatible test server and a real receiver. It holds only its own request span, as a
web handler would, and sends its thumbs-down through ``/v1/feedback`` with a token for that
span; the receiver resolves it to the LLM call below. The library captures content (its
default, or switched on); the receiver keeps none unless ``store_content`` is on.

The environments come from ``scripts/python-clients.sh``: ``CLOSEDLOOP_ACCEPTANCE_PYTHON`` is
the interpreter of the main environment and ``CLOSEDLOOP_ACCEPTANCE_TRACELOOP_PYTHON`` that of
traceloop-sdk's. Without them the tests are skipped, unless
``CLOSEDLOOP_TEST_REQUIRE_ACCEPTANCE`` is set.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from llm_server import ANSWER_PREFIX, LlmServer
from otlp_sink import OtlpSink
from receiver import SECRET, Receiver

APPS = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(APPS))

import common  # noqa: E402


@dataclass(frozen=True)
class Library:
    name: str
    command: List[str]
    python_env: str
    retriever: bool
    env: Dict[str, str]


LIBRARIES = [
    Library(
        "openinference-openai",
        ["openai_app.py", "openinference"],
        "CLOSEDLOOP_ACCEPTANCE_PYTHON",
        False,
        {},
    ),
    Library(
        "opentelemetry-openai-v2",
        ["openai_app.py", "otel"],
        "CLOSEDLOOP_ACCEPTANCE_PYTHON",
        False,
        # Content capture on, on the span (the latest GenAI conventions).
        {
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
        },
    ),
    Library(
        "traceloop-sdk",
        ["openai_app.py", "traceloop"],
        "CLOSEDLOOP_ACCEPTANCE_TRACELOOP_PYTHON",
        False,
        {"TRACELOOP_TRACE_CONTENT": "true"},
    ),
    Library(
        "langchain-openinference", ["langchain_app.py"], "CLOSEDLOOP_ACCEPTANCE_PYTHON", True, {}
    ),
    Library(
        "llamaindex-openinference", ["llamaindex_app.py"], "CLOSEDLOOP_ACCEPTANCE_PYTHON", True, {}
    ),
]

QUESTION = "How do I reset my password?"
AGAIN = "How do I cancel my subscription?"
# A typo: the same question (rephrase), not the same words (regenerate).
REPHRASED = "How can I reset my pasword?"


class DeadProxy:
    """The proxy the apps are given for everything but 127.0.0.1: it refuses every request
    and remembers it, so a library that tries to reach beyond this machine is caught."""

    def __init__(self) -> None:
        self.attempts: List[str] = []
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self._socket.getsockname()[1]

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    first_line = connection.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first_line = b"(nothing)"
                self.attempts.append(first_line.decode("latin-1"))
                connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._socket.close()


def _python(library: Library) -> str:
    python = os.environ.get(library.python_env)
    if not python:
        message = f"{library.python_env} is not set (scripts/python-clients.sh sets it)"
        if os.environ.get("CLOSEDLOOP_TEST_REQUIRE_ACCEPTANCE"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def run_app(
    library: Library, llm: LlmServer, receiver: Receiver, turns: List[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """Runs the library's app through ``turns``; what it answered and sent. Fails when the
    app tried to reach anything beyond this machine."""
    python = _python(library)
    proxy = DeadProxy()
    with tempfile.TemporaryDirectory() as empty:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "TRACELOOP_", "OPENAI_"))
        }
        env.update(
            {
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": llm.base_url,
                "OPENAI_API_BASE": llm.base_url,
                "CLOSEDLOOP_RECEIVER_URL": receiver.http_url,
                "CLOSEDLOOP_FEEDBACK_SECRET": SECRET,
                # Nothing may reach beyond this machine: a dead proxy for everything else, and
                # empty caches for tiktoken and nltk, which otherwise download their data.
                "HTTP_PROXY": proxy.url,
                "HTTPS_PROXY": proxy.url,
                "ALL_PROXY": proxy.url,
                "NO_PROXY": "127.0.0.1,localhost",
                "TIKTOKEN_CACHE_DIR": empty,
                "NLTK_DATA": empty,
                "HF_HUB_OFFLINE": "1",
                "TRACELOOP_TELEMETRY": "false",
                "PYTHONPATH": str(APPS),
                "CLOSEDLOOP_APP_RESULTS": str(Path(empty) / "results.json"),
            }
        )
        env.update(library.env)
        done = subprocess.run(
            [python, *library.command],
            input=json.dumps({"turns": turns}),
            capture_output=True,
            text=True,
            cwd=APPS,
            env=env,
            timeout=240,
        )
        proxy.close()
        assert done.returncode == 0, f"{library.name} app failed:\n{done.stderr}"
        assert proxy.attempts == [], f"{library.name} tried to reach {proxy.attempts}"
        return json.loads((Path(empty) / "results.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    server = LlmServer().start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    running = OtlpSink().start()
    yield running
    running.stop()


def _receiver(binary: Path, directory: Path, sink: OtlpSink, store_content: bool) -> Receiver:
    directory.mkdir()
    return Receiver(
        directory, binary=binary, export_url=sink.url, store_content=store_content
    ).start()


def _by_trace(sink: OtlpSink) -> Dict[str, Dict[str, Any]]:
    return {record["trace_id"]: record["attributes"] for record in sink.records().values()}


@pytest.mark.parametrize("library", LIBRARIES, ids=[library.name for library in LIBRARIES])
def test_the_whole_loop_keeps_no_content(
    library: Library, llm: LlmServer, binary: Path, tmp_path: Path, sink: OtlpSink
) -> None:
    receiver = _receiver(binary, tmp_path / "store", sink, store_content=False)
    try:
        turns = [
            {"session": "s-down", "question": QUESTION, "thumbs_down": True},
            {"session": "s-again", "question": AGAIN},
            {"session": "s-again", "question": AGAIN},
            {"session": "s-rephrase", "question": QUESTION},
            {"session": "s-rephrase", "question": REPHRASED},
        ]
        results = run_app(library, llm, receiver, turns)
        down, again, _, first, _ = results
        sink.wait_for(lambda spans: len(sink.records()) >= 3, timeout_secs=20)
        records = _by_trace(sink)
        listed = receiver.cli("triage", "list", "--json")
        evalset = receiver.cli("evalset", "export")
        report = receiver.report()
        stored = receiver.stored_bytes()
    finally:
        receiver.stop()

    # Every expectation is checked, so a failure lists all that is missing at once.
    problems: List[str] = []

    def expect(condition: bool, problem: str) -> None:
        if not condition:
            problems.append(problem)

    # One thumbs-down: one enriched record on the answer's trace.
    record = records.get(down["trace_id"], {})
    expect(bool(record), f"no record on the thumbs-down's trace; records: {records}")
    expect(
        record.get("closedloop.failure.signals") == ["thumbs_down"],
        f"signals {record.get('closedloop.failure.signals')}",
    )
    expect(record.get("closedloop.failure.enriched") is True, "the record is not enriched")
    expect(
        record.get("closedloop.failure.response.model") == common.MODEL,
        f"model {record.get('closedloop.failure.response.model')!r}",
    )
    expect(
        record.get("closedloop.prompt.template.id") == common.TEMPLATE.id,
        f"template id {record.get('closedloop.prompt.template.id')!r}",
    )
    expect(
        record.get("closedloop.prompt.template.version") == common.TEMPLATE.version,
        f"template version {record.get('closedloop.prompt.template.version')!r}",
    )
    expect(record.get("session.id") == "s-down", f"session {record.get('session.id')!r}")
    if library.retriever:
        expect(bool(down["chunk_ids"]), "the app placed no chunk in the prompt")
        chunk_ids = record.get("closedloop.context.chunk_ids")
        expect(
            chunk_ids == down["chunk_ids"],
            f"chunk ids {chunk_ids!r}, placed {down['chunk_ids']!r}",
        )

    # The same question twice: regenerate; a rephrasing: rephrase (from fingerprints alone).
    signals = {trace_id: r.get("closedloop.failure.signals") for trace_id, r in records.items()}
    expect(
        signals.get(again["trace_id"]) == ["regenerate"], f"no regenerate record; signals {signals}"
    )
    expect(signals.get(first["trace_id"]) == ["rephrase"], f"no rephrase record; signals {signals}")
    expect(len(records) == 3, f"{len(records)} records, 3 expected")

    # One response per answer, all of the app's template version.
    expect(
        report["responses"] == len(turns),
        f"{report['responses']} responses for {len(turns)} answers",
    )
    versions = [
        (v["template_id"], v["template_version"], v["responses"]) for v in report["versions"]
    ]
    expect(
        versions == [(common.TEMPLATE.id, common.TEMPLATE.version, len(turns))],
        f"report versions {versions}",
    )

    # Content on in the library, off in the store: no text anywhere.
    texts = [QUESTION, AGAIN, REPHRASED, ANSWER_PREFIX] + [text for _, text in common.KB]
    exported = b"".join(sink.raw)
    for text in texts:
        for where, data in (("store", stored), ("export", exported)):
            expect(text.encode("utf-8") not in data, f"{text!r} in the {where}")
        for where, output in (
            ("triage list", listed),
            ("evalset", evalset),
            ("report", json.dumps(report)),
        ):
            expect(text not in output, f"{text!r} in {where}")
    assert not problems, f"{library.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("library", LIBRARIES, ids=[library.name for library in LIBRARIES])
def test_a_store_that_keeps_content_gives_eval_inputs(
    library: Library, llm: LlmServer, binary: Path, tmp_path: Path, sink: OtlpSink
) -> None:
    receiver = _receiver(binary, tmp_path / "store", sink, store_content=True)
    try:
        (down,) = run_app(
            library,
            llm,
            receiver,
            [{"session": "s-content", "question": QUESTION, "thumbs_down": True}],
        )
        sink.wait_for(lambda spans: len(sink.records()) >= 1, timeout_secs=20)
        cases = receiver.evalset()
        stored = receiver.stored_bytes()
    finally:
        receiver.stop()
    # The control for the test above: the library did capture the text, and this store kept it.
    assert QUESTION.encode("utf-8") in stored, "the library captured no content"
    assert down["trace_id"] in _by_trace(sink)
    (case,) = cases
    assert case["input"], case
    assert QUESTION in case["input"], case
