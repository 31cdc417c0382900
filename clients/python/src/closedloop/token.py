"""Signed, expiring feedback tokens, byte for byte as closedloop-tracing writes them.

A token is base64url (no padding) of a version byte (1), the 16-byte trace id, the 8-byte
span id, the expiry in Unix seconds (8 bytes, big-endian) and an HMAC-SHA256 over those 33
bytes keyed with the shared secret. The receiver verifies it with ``feedback.token_secret``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass
from typing import Optional, Union

__all__ = [
    "TokenError",
    "VerifiedToken",
    "issue_feedback_token",
    "verify_feedback_token",
]

_VERSION = 1
_PAYLOAD_LEN = 1 + 16 + 8 + 8
_TAG_LEN = 32


class TokenError(ValueError):
    """Why a feedback token was refused.

    ``reason`` is one of ``"malformed"``, ``"unsupported_version"``, ``"bad_signature"`` and
    ``"expired"``, as the Rust crate's ``TokenError`` variants.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    """A feedback token whose signature and expiry were checked."""

    trace_id: str
    """The trace of the judged response (32 lowercase hex digits)."""
    span_id: str
    """The judged span (16 lowercase hex digits)."""
    expires_at: int
    """When the token stops being accepted, in Unix seconds."""


def _secret_bytes(secret: Union[str, bytes]) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _id_bytes(value: Union[str, int], length: int, name: str) -> bytes:
    if isinstance(value, int):
        if not 0 < value < 1 << (8 * length):
            raise ValueError(f"{name} must be a non-zero {8 * length}-bit integer")
        return value.to_bytes(length, "big")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != length or not any(raw):
        raise ValueError(f"{name} must be {2 * length} hex digits, not all zero")
    return raw


def issue_feedback_token(
    secret: Union[str, bytes],
    trace_id: Union[str, int],
    span_id: Union[str, int],
    expires_at: Union[int, float],
) -> str:
    """Signs a token granting feedback on one span until ``expires_at`` (Unix seconds).

    ``trace_id`` and ``span_id`` are hex strings or the integers OpenTelemetry's
    ``SpanContext`` holds. The expiry is rounded down to whole seconds; one before the epoch
    is written as 0.
    """
    expiry = max(0, int(expires_at))
    payload = (
        bytes([_VERSION])
        + _id_bytes(trace_id, 16, "trace_id")
        + _id_bytes(span_id, 8, "span_id")
        + struct.pack(">Q", expiry)
    )
    tag = hmac.new(_secret_bytes(secret), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    text = token.strip()
    if not text or any(c not in _ALPHABET for c in text) or len(text) % 4 == 1:
        raise TokenError("malformed", "malformed feedback token")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "malformed feedback token") from None
    # Like the Rust decoder, refuse a non-canonical encoding (stray bits in the last digit).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise TokenError("malformed", "malformed feedback token")
    return raw


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def verify_feedback_token(
    secret: Union[str, bytes], token: str, now: Optional[float] = None
) -> VerifiedToken:
    """Checks a token's layout, its signature (in constant time), then its expiry.

    ``now`` is Unix seconds (the current time when omitted). Raises :class:`TokenError`.
    """
    raw = _decode(token)
    if not raw:
        raise TokenError("malformed", "malformed feedback token")
    if raw[0] != _VERSION:
        raise TokenError("unsupported_version", f"unsupported feedback token version {raw[0]}")
    if len(raw) != _PAYLOAD_LEN + _TAG_LEN:
        raise TokenError("malformed", "malformed feedback token")
    payload, tag = raw[:_PAYLOAD_LEN], raw[_PAYLOAD_LEN:]
    want = hmac.new(_secret_bytes(secret), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(want, tag):
        raise TokenError("bad_signature", "feedback token signature does not match")
    (expiry,) = struct.unpack(">Q", payload[25:33])
    if (time.time() if now is None else now) >= expiry:
        raise TokenError("expired", "feedback token expired")
    trace_id, span_id = payload[1:17], payload[17:25]
    if not any(trace_id) or not any(span_id):
        raise TokenError("malformed", "malformed feedback token")
    return VerifiedToken(trace_id.hex(), span_id.hex(), expiry)
