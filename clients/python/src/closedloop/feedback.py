"""Feedback: to the receiver's ``POST /v1/feedback``, or as a feedback span.

:func:`send_feedback` posts JSON with the stdlib (``urllib``); the receiver checks the
feedback token against ``feedback.token_secret``. :func:`record_feedback` emits a feedback
span through OpenTelemetry instead, in the judged trace with one link to the judged span, for
an app that exports its own spans to the receiver.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, Optional, Union

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from . import attributes as attr
from .token import issue_feedback_token

__all__ = [
    "FeedbackError",
    "FeedbackResult",
    "record_feedback",
    "response_ref",
    "send_feedback",
]

FEEDBACK_PATH = "/v1/feedback"

_IMPLICIT = {"regenerate", "rephrase", "edit", "copy", "abandon"}
_VALUE_ONE = {"thumbs_up", "copy"}
_VALUE_ZERO = {"thumbs_down", "regenerate", "rephrase", "abandon", "escalate", "report"}


class FeedbackError(Exception):
    """The receiver refused feedback (or could not be reached: ``status`` 0).

    ``code`` is the receiver's error code (``invalid_token``, ``token_mismatch``,
    ``rate_limited``...) and ``retry_after`` its ``Retry-After`` in seconds, when given.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: Optional[int] = None
    ) -> None:
        super().__init__(f"feedback refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class FeedbackResult:
    """The receiver's answer: the feedback's id, and whether it was a repeat."""

    feedback_id: str
    duplicate: bool


def _hex(value: Union[str, int], digits: int) -> str:
    return format(value, f"0{digits}x") if isinstance(value, int) else value.lower()


def response_ref(
    span: trace.Span, secret: Union[str, bytes], ttl_secs: int = 86400
) -> Dict[str, str]:
    """What the app hands its client with an answer: the span's ids and a feedback token.

    The dict is the ``response`` object ``POST /v1/feedback`` takes, token included.
    """
    context = span.get_span_context()
    return {
        "trace_id": _hex(context.trace_id, 32),
        "span_id": _hex(context.span_id, 16),
        "feedback_token": issue_feedback_token(
            secret, context.trace_id, context.span_id, time.time() + ttl_secs
        ),
    }


def send_feedback(
    endpoint: str,
    *,
    trace_id: Union[str, int],
    span_id: Union[str, int],
    feedback_token: str,
    signal: str,
    value: Optional[float] = None,
    rating: Optional[float] = None,
    scale: Optional[float] = None,
    category: Optional[str] = None,
    comment: Optional[str] = None,
    idempotency_id: Optional[str] = None,
    response_id: Optional[str] = None,
    session_id: Optional[str] = None,
    timeout_secs: float = 10.0,
) -> FeedbackResult:
    """Posts one piece of feedback to the receiver's feedback API.

    ``endpoint`` is the receiver's HTTP address (``http://127.0.0.1:4318``) or the full
    ``…/v1/feedback`` URL. ``signal`` is a ``closedloop.feedback.signal`` value
    (``thumbs_down``...), ``category`` a ``closedloop.failure.category`` one. The comment is
    kept only where the receiver captures comments. Raises :class:`FeedbackError`.
    """
    url = endpoint.rstrip("/")
    if not url.endswith(FEEDBACK_PATH):
        url += FEEDBACK_PATH
    body: Dict[str, object] = {
        "response": {"trace_id": _hex(trace_id, 32), "span_id": _hex(span_id, 16)},
        "signal": signal,
        "feedback_token": feedback_token,
    }
    optional = {
        "value": value,
        "rating": rating,
        "scale": scale,
        "category": category,
        "comment": comment,
        "idempotency_id": idempotency_id,
        "response_id": response_id,
        "session_id": session_id,
    }
    body.update({key: v for key, v in optional.items() if v is not None})
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_secs) as answer:
            parsed = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise _refusal(error) from None
    except (urllib.error.URLError, OSError) as error:
        raise FeedbackError(0, "unreachable", str(error)) from None
    return FeedbackResult(str(parsed.get("feedback_id", "")), bool(parsed.get("duplicate")))


def _refusal(error: urllib.error.HTTPError) -> FeedbackError:
    code, message = "http_error", error.reason or ""
    try:
        detail = json.loads(error.read() or b"{}").get("error", {})
        code = str(detail.get("code", code))
        message = str(detail.get("message", message))
    except (ValueError, AttributeError):
        pass
    retry = error.headers.get("Retry-After") if error.headers else None
    return FeedbackError(
        error.code, code, str(message), int(retry) if retry and retry.isdigit() else None
    )


def record_feedback(
    trace_id: Union[str, int],
    span_id: Union[str, int],
    signal: str,
    *,
    value: Optional[float] = None,
    category: Optional[str] = None,
    comment: Optional[str] = None,
    capture_comment: bool = False,
    feedback_id: Optional[str] = None,
    response_id: Optional[str] = None,
    session_id: Optional[str] = None,
    user_id: Optional[str] = None,
    kind: Optional[str] = None,
    source: Optional[str] = None,
    tracer_provider: Optional[trace.TracerProvider] = None,
) -> None:
    """Emits one feedback span about the span ``trace_id``/``span_id``.

    The span is a child of the judged span's context (as a remote parent, so it is in the same
    trace and sampled with it) and has exactly one link, to the judged span, with
    ``closedloop.link.type`` = ``judged_response``. The judged span need not be alive or in this
    process. ``kind``, ``value`` and ``source`` default from the signal as closedloop-tracing
    does. ``comment`` is content: it is exported only with ``capture_comment=True``.
    """
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"feedback value {value} is not between 0.0 and 1.0")
    if value is None:
        value = 1.0 if signal in _VALUE_ONE else 0.0 if signal in _VALUE_ZERO else None
    if kind is None:
        kind = "implicit" if signal in _IMPLICIT else "explicit"
    if source is None:
        source = (
            "app"
            if signal in ("regenerate", "edit", "copy")
            else "detector"
            if signal in ("rephrase", "abandon")
            else "reviewer"
            if signal == "label"
            else "user"
        )
    label = "neutral" if value is None else "pass" if value >= 0.5 else "fail"
    attributes: Dict[str, Union[str, float]] = {
        attr.FEEDBACK_SIGNAL: signal,
        attr.FEEDBACK_KIND: kind,
        attr.FEEDBACK_SOURCE: source,
        attr.GEN_AI_EVALUATION_NAME: f"closedloop.feedback.{signal}",
        attr.GEN_AI_EVALUATION_SCORE_LABEL: label,
    }
    if value is not None:
        attributes[attr.FEEDBACK_VALUE] = value
        attributes[attr.GEN_AI_EVALUATION_SCORE_VALUE] = value
    optional = {
        attr.FAILURE_CATEGORY: category,
        attr.FEEDBACK_ID: feedback_id,
        attr.GEN_AI_RESPONSE_ID: response_id,
        attr.SESSION_ID: session_id,
        attr.USER_ID: user_id,
    }
    attributes.update({key: v for key, v in optional.items() if v is not None})
    if comment and capture_comment:
        attributes[attr.FEEDBACK_COMMENT] = comment
        attributes[attr.GEN_AI_EVALUATION_EXPLANATION] = comment

    judged = SpanContext(
        trace_id=int(trace_id, 16) if isinstance(trace_id, str) else trace_id,
        span_id=int(span_id, 16) if isinstance(span_id, str) else span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    if not judged.is_valid:
        raise ValueError("trace_id and span_id must be valid, non-zero ids")
    tracer = trace.get_tracer("closedloop-client", tracer_provider=tracer_provider)
    parent = trace.set_span_in_context(NonRecordingSpan(judged))
    span = tracer.start_span(
        f"feedback {signal}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=[Link(judged, {attr.LINK_TYPE: attr.LINK_TYPE_JUDGED_RESPONSE})],
    )
    span.end()
