"""Semantic fingerprints: float32 rounding, what cannot be hashed, and the processor's opt-in."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from closedloop import (
    ClosedloopSpanProcessor,
    SemanticHasher,
    semantic_hamming,
    semantic_similarity,
    turn,
)

VECTORS: Dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "testdata" / "vectors.json").read_text("utf-8")
)
MINILM = next(
    v
    for v in VECTORS["semantic_fingerprints"]
    if v["model"] == "all-MiniLM-L6-v2" and not all(x * 64 == int(x * 64) for x in v["embedding"])
)
SEMANTIC = "closedloop.query.semantic_fingerprint"


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def test_values_are_rounded_to_float32_first() -> None:
    hasher = SemanticHasher(MINILM["model"], len(MINILM["embedding"]))
    # Nudged by a quarter of a float32 step: the same float32 values, as Rust would see them.
    nudged: List[float] = []
    for x in MINILM["embedding"]:
        step = abs(x) * 2.0**-25
        nudged.append(x + step)
        assert _f32(nudged[-1]) == x and nudged[-1] != x
    assert hasher.fingerprint(nudged) == MINILM["fingerprint"]
    assert hasher.fingerprint(tuple(MINILM["embedding"])) == MINILM["fingerprint"]


def test_an_opposite_embedding_is_dissimilar() -> None:
    hasher = SemanticHasher(MINILM["model"], len(MINILM["embedding"]))
    opposite = hasher.fingerprint([-x for x in MINILM["embedding"]])
    similarity = semantic_similarity(MINILM["fingerprint"], opposite)
    assert similarity is not None and similarity < -0.99


def test_what_cannot_be_hashed_is_refused() -> None:
    for model in ("", "a:b", "two words", "tab\there", "nbsp\u00a0", "line\u2028sep"):
        with pytest.raises(ValueError):
            SemanticHasher(model, 4)
    with pytest.raises(ValueError):
        SemanticHasher("m", -1)
    hasher = SemanticHasher("m", 4)
    for bad in (
        [1.0, 2.0],
        [0.0, 0.0, -0.0, 0.0],
        [1.0, float("nan"), 0.0, 0.0],
        [1.0, float("inf"), 0.0, 0.0],
        # Beyond float32's range, and below its smallest subnormal: infinite, and zero.
        [1e39, 1.0, 0.0, 0.0],
        [1e-50, 0.0, 0.0, -1e-50],
    ):
        with pytest.raises(ValueError):
            hasher.fingerprint(bad)
    with pytest.raises(TypeError):
        hasher.fingerprint(["a", "b", "c", "d"])  # type: ignore[list-item]


def test_only_fingerprints_of_one_model_compare() -> None:
    a = VECTORS["semantic_similarities"][0]["a"]
    assert semantic_similarity(a, a) == 1.0
    other = a.replace("all-MiniLM-L6-v2", "another-model")
    assert semantic_similarity(a, other) is None
    assert semantic_hamming(a, other) is None
    for bad in (
        "sh512:m:00",
        "mh64v2:m:" + "0" * 128,
        "sh512::" + "0" * 128,
        "sh512:m:" + "g" * 128,
        "sh512:" + "0" * 128,
        "sh512:a:b:" + "0" * 128,
    ):
        with pytest.raises(ValueError):
            semantic_similarity(a, bad)


@pytest.fixture
def traced() -> Iterator[
    Tuple[TracerProvider, InMemorySpanExporter, TracerProvider, InMemorySpanExporter]
]:
    providers = []
    for capture in (False, True):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(ClosedloopSpanProcessor(capture_query_embedding=capture))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append((provider, exporter))
    (off, off_spans), (on, on_spans) = providers
    yield off, off_spans, on, on_spans
    off.shutdown()
    on.shutdown()


def test_the_semantic_fingerprint_is_written_only_when_captured(traced) -> None:
    off, off_spans, on, on_spans = traced
    hasher = SemanticHasher(MINILM["model"], len(MINILM["embedding"]))
    with turn(session_id="s-1", query="How do I reset my password?") as t:
        off.get_tracer("t").start_span("before").end()
        t.set_query_embedding(hasher, MINILM["embedding"])
        off.get_tracer("t").start_span("chat").end()
        on.get_tracer("t").start_span("chat").end()
        with turn(turn_index=2):
            on.get_tracer("t").start_span("nested").end()
    (before, chat_off) = off_spans.get_finished_spans()
    assert SEMANTIC not in (chat_off.attributes or {})
    assert "closedloop.query.fingerprint" in (chat_off.attributes or {})
    assert SEMANTIC not in (before.attributes or {})
    chat_on, nested = on_spans.get_finished_spans()
    assert (chat_on.attributes or {})[SEMANTIC] == MINILM["fingerprint"]
    # An inner turn inherits it.
    assert (nested.attributes or {})[SEMANTIC] == MINILM["fingerprint"]
    # The turn keeps the fingerprint, never the vector.
    assert t.query_semantic_fingerprint == MINILM["fingerprint"]
    assert not any(isinstance(v, (list, tuple)) and len(v) == 384 for v in vars(t).values())
