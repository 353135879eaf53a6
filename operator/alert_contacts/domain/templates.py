"""User templates: Jinja2 in a sandbox, output capped, errors returned, never raised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_TEMPLATE_OUTPUT = 64 * 1024


@dataclass(frozen=True)
class TemplateResult:
    """The rendered text, or None and the error (for the default rendering to stand in)."""

    text: str | None
    error: str | None = None


def render_template(
    source: str,
    context: Mapping[str, Any],
    *,
    html: bool = False,
    max_bytes: int = MAX_TEMPLATE_OUTPUT,
) -> TemplateResult:
    raise NotImplementedError
