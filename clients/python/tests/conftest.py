"""Fixtures: the receiver binary and the OpenAI-compatible test server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_server import LlmServer  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402
from receiver import Receiver, closedloop_binary  # noqa: E402


@pytest.fixture(scope="session")
def binary() -> Path:
    path = closedloop_binary()
    if not path.exists():
        if os.environ.get("CLOSEDLOOP_TEST_REQUIRE_RECEIVER"):
            pytest.fail(f"no closedloop binary at {path} (cargo build -p closedloop-cli)")
        pytest.skip(f"no closedloop binary at {path} (cargo build -p closedloop-cli)")
    return path


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    running = OtlpSink().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def receiver(binary: Path, tmp_path: Path, sink: OtlpSink) -> Iterator[Receiver]:
    """A receiver that keeps no content and exports its failure records to ``sink``."""
    running = Receiver(tmp_path, binary=binary, export_url=sink.url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LlmServer]:
    server = LlmServer().start()
    try:
        yield server
    finally:
        server.stop()
