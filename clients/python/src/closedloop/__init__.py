"""closedloop for Python apps.

- :func:`issue_feedback_token` / :func:`verify_feedback_token`: feedback tokens the receiver
  accepts (``feedback.token_secret``), as closedloop-tracing mints them.
- :func:`fingerprint` and :class:`PromptTemplate`: the query fingerprint and template versions
  closedloop-tracing writes.
- :class:`SemanticHasher` and :func:`semantic_similarity`: the semantic query fingerprint
  (``sh512``), a hash of the query's embedding, and the cosine it estimates.
- :class:`ClosedloopSpanProcessor` and :func:`turn`: closedloop's attributes on the spans of any
  instrumentation started inside a turn.
- :func:`send_feedback` (``POST /v1/feedback``), :func:`record_feedback` (a feedback span) and
  :func:`response_ref` (what an app hands its client with an answer).
"""

from .feedback import (
    FeedbackError,
    FeedbackResult,
    record_feedback,
    response_ref,
    send_feedback,
)
from .fingerprint import fingerprint
from .processor import ClosedloopSpanProcessor, Turn, current_turn, turn
from .semantic import (
    SUGGESTED_SEMANTIC_THRESHOLD,
    SemanticHasher,
    semantic_hamming,
    semantic_similarity,
)
from .template import PromptTemplate, template_hash
from .token import TokenError, VerifiedToken, issue_feedback_token, verify_feedback_token

__all__ = [
    "ClosedloopSpanProcessor",
    "FeedbackError",
    "FeedbackResult",
    "PromptTemplate",
    "SUGGESTED_SEMANTIC_THRESHOLD",
    "SemanticHasher",
    "TokenError",
    "Turn",
    "VerifiedToken",
    "current_turn",
    "fingerprint",
    "issue_feedback_token",
    "record_feedback",
    "response_ref",
    "semantic_hamming",
    "semantic_similarity",
    "send_feedback",
    "template_hash",
    "turn",
    "verify_feedback_token",
]

__version__ = "0.1.0"
