"""Prompt templates with content-hash versions, as closedloop-tracing's ``PromptTemplate``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["PromptTemplate", "template_hash"]


def template_hash(text: str) -> str:
    """``sha256:`` and the 64 lowercase hex digits of the SHA-256 of the template's text."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template: a stable id, its text, and its version.

    The version is the first 12 hex digits of the text's SHA-256, so any edit yields a new
    version, unless one is pinned (``version="v3"``). The hash always names the exact text.
    The text itself is never exported by this package.
    """

    id: str
    text: str
    pinned_version: Optional[str] = field(default=None, repr=False)

    @property
    def hash(self) -> str:
        """``closedloop.prompt.template.hash``."""
        return template_hash(self.text)

    @property
    def version(self) -> str:
        """``closedloop.prompt.template.version``: pinned, or derived from the text."""
        if self.pinned_version is not None:
            return self.pinned_version
        return self.hash[len("sha256:") :][:12]

    def with_version(self, version: str) -> "PromptTemplate":
        """The same template with a pinned version name (``v3``, ``2026-11-01``)."""
        return PromptTemplate(self.id, self.text, version)

    def render(self, **variables: str) -> str:
        """Fills ``{name}`` placeholders (``{{`` and ``}}`` are literal braces)."""
        return self.text.format(**variables)
