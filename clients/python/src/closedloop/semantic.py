"""Semantic query fingerprints (the ``sh512`` scheme of closedloop-tracing).

A 512-bit random-hyperplane SimHash of the query's embedding, the one the application already
computes for retrieval: bit *j* is set when the embedding's dot product with hyperplane *j*
is positive. The hyperplanes' entries are ±1, drawn from SplitMix64 seeded by FNV-1a over
``closedloop sh512``, the model's name and the dimension, so every process and language gets
the same bits for the same vector. Two fingerprints differing in *h* bits estimate the cosine
of their embeddings as cos(π·h/512). The value, as carried in
``closedloop.query.semantic_fingerprint``, is ``sh512:<model>:`` and 128 lowercase hex digits.

The vector never leaves the process, but the hash still tells roughly what the query is
about (which queries are near it): it is content, exported only when the application opts in.

Embedding values are rounded to float32 first, as the Rust crate takes them, and the
projections are summed in float64 in dimension order, so the bits are the crate's exactly.
"""

from __future__ import annotations

import math
import operator
import re
import struct
from functools import reduce
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "SUGGESTED_SEMANTIC_THRESHOLD",
    "SemanticHasher",
    "semantic_hamming",
    "semantic_similarity",
]

_MASK = (1 << 64) - 1
_SCHEME = "sh512"
_BITS = 512
_WORDS = _BITS // 64

#: The cosine estimate at or above which two consecutive queries are likely the same question
#: asked differently, for ``sh512`` fingerprints of ``all-MiniLM-L6-v2`` embeddings (the
#: receiver's ``[detectors.rephrase] semantic_threshold``).
SUGGESTED_SEMANTIC_THRESHOLD = 0.75

# Rust's char::is_whitespace (Unicode White_Space), which str.isspace does not match exactly.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_HEX = re.compile(r"[0-9a-fA-F]{128}")


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x00000100000001B3) & _MASK
    return h


def _splitmix64(state: int, count: int) -> List[int]:
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        out.append(z ^ (z >> 31))
    return out


def _gatherer(indices: List[int]) -> Callable[[Sequence[float]], Tuple[float, ...]]:
    """A function picking ``values[i]`` for ``i`` in ``indices``, in order, as a tuple."""
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    if len(indices) == 1:
        (i,) = indices
        return lambda values: (values[i],)
    return lambda values: ()


class SemanticHasher:
    """Computes ``sh512`` fingerprints of one embedding model's vectors.

    Build it once per model and reuse it: it holds the model's 512 hyperplanes. The name is
    part of every fingerprint: use the model's own (``all-MiniLM-L6-v2``,
    ``text-embedding-3-small``); it must be non-empty, without ``:`` or whitespace.

    >>> hasher = SemanticHasher("test-model", 3)
    >>> hasher.fingerprint([0.5, -1.0, 0.25])[:24]
    'sh512:test-model:51559ef'
    """

    def __init__(self, model: str, dimensions: int) -> None:
        if not isinstance(model, str):
            raise TypeError("the embedding model name must be a string")
        if not model or ":" in model or any(c in _WHITESPACE for c in model):
            raise ValueError(
                f"the embedding model name must be non-empty without ':' or whitespace: {model!r}"
            )
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise TypeError("the embedding dimension must be an int")
        if not 0 <= dimensions <= _MASK:
            raise ValueError(f"the embedding dimension must be non-negative, not {dimensions}")
        self._model = model
        self._dimensions = dimensions
        seed = _fnv1a(
            b"closedloop sh512\0" + model.encode("utf-8") + b"\0" + dimensions.to_bytes(8, "little")
        )
        # Dimension i's signs are draws i*8 .. i*8+7 (bit j of the 512 in draw j // 64).
        draws = _splitmix64(seed, dimensions * _WORDS)
        # For each plane, the dimensions where its entry is +1, ascending: the plane's positive
        # sum adds exactly those values in dimension order, as the crate does.
        self._planes = []
        for j in range(_BITS):
            word, bit = divmod(j, 64)
            indices = [i for i in range(dimensions) if draws[i * _WORDS + word] >> bit & 1]
            self._planes.append(_gatherer(indices))

    @property
    def model(self) -> str:
        """The embedding model's name."""
        return self._model

    @property
    def dimensions(self) -> int:
        """The embedding length this hasher takes."""
        return self._dimensions

    def __repr__(self) -> str:
        return f"SemanticHasher(model={self._model!r}, dimensions={self._dimensions})"

    def fingerprint(self, embedding: Iterable[float]) -> str:
        """The fingerprint of ``embedding`` (any scale: only its direction matters), as the
        ``closedloop.query.semantic_fingerprint`` value.

        Any sequence of numbers (a list, a NumPy array); each value is rounded to float32
        first. Raises ``ValueError`` for another length than the hasher's, a NaN or an
        infinity (also after rounding), or an all-zero vector.
        """
        values = list(embedding)
        if len(values) != self._dimensions:
            raise ValueError(
                f"the embedding has {len(values)} dimensions, the model {self._dimensions}"
            )
        fmt = f"<{len(values)}f"
        try:
            rounded = struct.unpack(fmt, struct.pack(fmt, *values))
        except OverflowError:
            # A float64 beyond float32's range: infinite as a float32.
            raise ValueError("the embedding is zero or not finite") from None
        except struct.error as e:
            raise TypeError(f"the embedding must hold numbers: {e}") from None
        if not all(map(math.isfinite, rounded)) or not any(rounded):
            raise ValueError("the embedding is zero or not finite")
        add = operator.add
        # Plane j's dot product is 2·(sum where the entry is +1) − (sum of all). Each sum
        # starts at 0.0 and adds left to right (not sum(), which compensates since 3.12).
        total = reduce(add, rounded, 0.0)
        words = [0] * _WORDS
        for j, gather in enumerate(self._planes):
            if 2.0 * reduce(add, gather(rounded), 0.0) - total > 0.0:
                words[j >> 6] |= 1 << (j & 63)
        return f"{_SCHEME}:{self._model}:" + "".join(f"{w:016x}" for w in words)


def _parse(value: str) -> Tuple[str, int]:
    """The model and the 512 bits (word 0 in the low bits) of a fingerprint."""
    prefix = _SCHEME + ":"
    if not isinstance(value, str) or not value.startswith(prefix):
        raise ValueError(f"not a semantic fingerprint (sh512:<model>:<128 hex digits>): {value!r}")
    model, sep, digits = value[len(prefix) :].rpartition(":")
    if not sep or not model or ":" in model or not _HEX.fullmatch(digits):
        raise ValueError(f"not a semantic fingerprint (sh512:<model>:<128 hex digits>): {value!r}")
    bits = 0
    for i in range(_WORDS):
        bits |= int(digits[i * 16 : (i + 1) * 16], 16) << (64 * i)
    return model, bits


def semantic_hamming(a: str, b: str) -> Optional[int]:
    """The number of bits in which two ``sh512`` fingerprints differ; ``None`` when they come
    from different models. Raises ``ValueError`` for a value that is not a fingerprint."""
    model_a, bits_a = _parse(a)
    model_b, bits_b = _parse(b)
    if model_a != model_b:
        return None
    return bin(bits_a ^ bits_b).count("1")


def semantic_similarity(a: str, b: str) -> Optional[float]:
    """The estimated cosine similarity of the two fingerprinted embeddings, cos(π·h/512) for
    ``h`` differing bits, in -1..1; ``None`` when the fingerprints come from different models
    (they are never compared). Raises ``ValueError`` for a value that is not a fingerprint.

    >>> hasher = SemanticHasher("test-model", 3)
    >>> semantic_similarity(hasher.fingerprint([1, 2, 3]), hasher.fingerprint([2, 4, 6]))
    1.0
    """
    h = semantic_hamming(a, b)
    return None if h is None else math.cos(math.pi * h / _BITS)
