"""The shared vectors (clients/testdata/vectors.json), as closedloop-tracing computes them."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any, Dict, List

import pytest

from closedloop import (
    PromptTemplate,
    SemanticHasher,
    TokenError,
    fingerprint,
    issue_feedback_token,
    semantic_hamming,
    semantic_similarity,
    verify_feedback_token,
)

VECTORS: Dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "testdata" / "vectors.json").read_text("utf-8")
)


def _ids(items: List[Dict[str, Any]], key: str) -> List[str]:
    return [repr(item[key])[:40] for item in items]


@pytest.mark.parametrize("vector", VECTORS["tokens"], ids=_ids(VECTORS["tokens"], "token"))
def test_tokens_match_the_rust_crate(vector: Dict[str, Any]) -> None:
    token = issue_feedback_token(
        vector["secret"], vector["trace_id"], vector["span_id"], vector["expires_at_unix"]
    )
    assert token == vector["token"]
    verified = verify_feedback_token(vector["secret"], vector["token"], now=0)
    assert (verified.trace_id, verified.span_id, verified.expires_at) == (
        vector["trace_id"],
        vector["span_id"],
        vector["expires_at_unix"],
    )
    with pytest.raises(TokenError) as expired:
        verify_feedback_token(vector["secret"], token, now=vector["expires_at_unix"])
    assert expired.value.reason == "expired"
    with pytest.raises(TokenError) as forged:
        verify_feedback_token(vector["secret"] + "x", token, now=0)
    assert forged.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "vector", VECTORS["fingerprints"], ids=_ids(VECTORS["fingerprints"], "query")
)
def test_fingerprints_match_the_rust_crate(vector: Dict[str, str]) -> None:
    assert fingerprint(vector["query"]) == vector["fingerprint"]


@pytest.mark.parametrize("vector", VECTORS["templates"], ids=_ids(VECTORS["templates"], "text"))
def test_template_versions_match_the_rust_crate(vector: Dict[str, str]) -> None:
    template = PromptTemplate("t", vector["text"])
    assert template.hash == vector["hash"]
    assert template.version == vector["version"]
    assert template.with_version("v3").version == "v3"
    assert template.with_version("v3").hash == vector["hash"]


@pytest.mark.parametrize(
    "vector",
    VECTORS["semantic_fingerprints"],
    ids=[
        f"{v['model']}-{len(v['embedding'])}-{i}"
        for i, v in enumerate(VECTORS["semantic_fingerprints"])
    ],
)
def test_semantic_fingerprints_match_the_rust_crate(vector: Dict[str, Any]) -> None:
    hasher = SemanticHasher(vector["model"], len(vector["embedding"]))
    assert hasher.fingerprint(vector["embedding"]) == vector["fingerprint"]
    # Scale does not matter (doubling is exact in float32 too).
    assert hasher.fingerprint([2 * x for x in vector["embedding"]]) == vector["fingerprint"]


def test_the_semantic_vectors_cover_the_cases() -> None:
    cases = VECTORS["semantic_fingerprints"]
    assert any(v["model"] == "all-MiniLM-L6-v2" and len(v["embedding"]) == 384 for v in cases)
    assert any(all(x < 0 for x in v["embedding"]) for v in cases)
    assert any(0 < max(abs(x) for x in v["embedding"]) < 1e-20 for v in cases)


@pytest.mark.parametrize("vector", VECTORS["semantic_similarities"])
def test_semantic_similarities_match_the_rust_crate(vector: Dict[str, Any]) -> None:
    assert semantic_hamming(vector["a"], vector["b"]) == vector["hamming"]
    similarity = semantic_similarity(vector["a"], vector["b"])
    if vector["similarity"] is None:
        assert similarity is None
    else:
        # The libm's cosine may differ from Rust's in the last place, never more.
        assert similarity is not None
        assert math.isclose(similarity, vector["similarity"], rel_tol=1e-15, abs_tol=1e-15)
        assert similarity == math.cos(math.pi * vector["hamming"] / 512)


def test_every_tampered_byte_is_refused() -> None:
    vector = VECTORS["tokens"][0]
    raw = base64.urlsafe_b64decode(vector["token"] + "=")
    for i in range(1, len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(TokenError) as refused:
            verify_feedback_token(vector["secret"], text, now=0)
        assert refused.value.reason == "bad_signature", i


@pytest.mark.parametrize(
    "token, reason",
    [
        ("", "malformed"),
        ("not base64!", "malformed"),
        (base64.urlsafe_b64encode(bytes([1] * 10)).rstrip(b"=").decode(), "malformed"),
        (base64.urlsafe_b64encode(bytes([2] * 65)).rstrip(b"=").decode(), "unsupported_version"),
    ],
)
def test_malformed_tokens_are_reported_as_such(token: str, reason: str) -> None:
    with pytest.raises(TokenError) as refused:
        verify_feedback_token("0123456789abcdef0123456789abcdef", token, now=0)
    assert refused.value.reason == reason


def test_a_non_canonical_last_digit_is_malformed() -> None:
    vector = VECTORS["tokens"][0]
    # 65 bytes leave two stray bits in the last digit; setting one keeps the bytes the same.
    token = vector["token"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    with pytest.raises(TokenError) as refused:
        verify_feedback_token(vector["secret"], stray, now=0)
    assert refused.value.reason == "malformed"


def test_ids_must_be_valid() -> None:
    with pytest.raises(ValueError):
        issue_feedback_token("s" * 32, "0" * 32, "00f067aa0ba902b7", 10)
    with pytest.raises(ValueError):
        issue_feedback_token("s" * 32, "4bf92f3577b34da6a3ce929d0e0e4736", "abc", 10)
