"""User templates: Jinja2 in a sandbox, output capped, errors returned, never raised.

A template is input from a ConfigMap, not code of the operator, so it renders
in Jinja2's SandboxedEnvironment (no access to Python internals), with
undefined names as errors, bounded ``*``/``**``, one budget for range() across
the whole rendering and a cap on the output. Whatever goes wrong comes back as
text for the caller to fall back to the default rendering and report the error.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .alerts import Alert, Notification, format_time, notification_title, silence_url

MAX_TEMPLATE_OUTPUT = 64 * 1024
"""Bytes a template may produce; more is an error, not a truncated message."""
MAX_TEMPLATE_SOURCE = 64 * 1024
MAX_SEQUENCE = 100_000
"""Largest string or list a template may build with ``*`` (the sandbox caps range() alike)."""
MAX_ERROR_CHARS = 300
MAX_RANGE_ITEMS = 200_000
"""Items all range() calls of one rendering may produce together: nested loops over
ranges multiply, and a loop that prints nothing is not stopped by the output cap."""

_range_budget: contextvars.ContextVar[int] = contextvars.ContextVar("range_budget", default=0)


@dataclass(frozen=True)
class TemplateResult:
    """The rendered text, or None and the error (for the default rendering to stand in)."""

    text: str | None
    error: str | None = None


class _BoundedSandbox(SandboxedEnvironment):
    # '*' and '**' can build gigabytes from a few characters ("x" * 10**10).
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _big_number(right, 64):
            raise SecurityError("the exponent of '**' is too large in a template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_SEQUENCE
                ):
                    raise SecurityError(f"'*' would build more than {MAX_SEQUENCE} items")
        return super().call_binop(context, operator, left, right)


def _bounded_range(*args: int) -> range:
    items = range(*args)
    left = _range_budget.get() - len(items)
    if left < 0:
        raise SecurityError(
            f"range() would produce more than {MAX_RANGE_ITEMS} items in one rendering"
        )
    _range_budget.set(left)
    return items


def _big_number(value: Any, limit: int) -> bool:
    return isinstance(value, int | float) and abs(value) > limit


def _environment(html: bool) -> SandboxedEnvironment:
    env = _BoundedSandbox(
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals["range"] = _bounded_range
    return env


_ENVIRONMENTS = {False: _environment(False), True: _environment(True)}


def render_template(
    source: str,
    context: Mapping[str, Any],
    *,
    html: bool = False,
    max_bytes: int = MAX_TEMPLATE_OUTPUT,
) -> TemplateResult:
    """Render a user template in the sandbox; never raises.

    ``html`` turns autoescaping on (for the HTML part of an email). Output past
    ``max_bytes`` stops the rendering and is reported as an error.
    """
    if len(source.encode()) > MAX_TEMPLATE_SOURCE:
        return TemplateResult(None, f"the template is longer than {MAX_TEMPLATE_SOURCE} bytes")
    env = _ENVIRONMENTS[html]
    budget = _range_budget.set(MAX_RANGE_ITEMS)
    try:
        template = env.from_string(source)
        pieces: list[str] = []
        size = 0
        for piece in template.generate(**context):
            size += len(piece.encode())
            if size > max_bytes:
                return TemplateResult(
                    None, f"the template's output is longer than {max_bytes} bytes"
                )
            pieces.append(piece)
    except SecurityError as exc:
        return TemplateResult(None, _error("refused by the sandbox", exc))
    except TemplateError as exc:
        return TemplateResult(None, _error(type(exc).__name__, exc))
    except RecursionError:
        return TemplateResult(None, "the template recursed too deeply")
    except Exception as exc:  # a user template must never crash delivery
        return TemplateResult(None, _error(type(exc).__name__, exc))
    finally:
        _range_budget.reset(budget)
    text = "".join(pieces).strip()
    if not text:
        return TemplateResult(None, "the template produced no text")
    return TemplateResult(text)


def _error(kind: str, exc: BaseException) -> str:
    line = getattr(exc, "lineno", None)
    where = f" at line {line}" if line else ""
    message = " ".join(str(exc).split())
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return f"template error{where}: {kind}: {message}"


def template_context(
    notification: Notification,
    alerts: Sequence[Alert],
    tz: tzinfo,
    *,
    test: bool = False,
) -> dict[str, Any]:
    """Plain data a template sees (dicts, lists and strings only: nothing to reach through).

    ``alerts`` are those of this message (a part of the notification when it is
    split); ``firing`` and ``resolved`` are the same alerts by status.
    """
    items = [_alert_data(alert, notification.external_url, tz) for alert in alerts]
    return {
        "title": notification_title(notification),
        "status": notification.status,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "common_labels": dict(notification.common_labels),
        "common_annotations": dict(notification.common_annotations),
        "external_url": notification.external_url,
        "truncated_alerts": notification.truncated_alerts,
        "alerts": items,
        "firing": [a for a in items if a["status"] == "firing"],
        "resolved": [a for a in items if a["status"] == "resolved"],
        "test": test,
    }


def _alert_data(alert: Alert, external_url: str, tz: tzinfo) -> dict[str, Any]:
    return {
        "status": alert.status,
        "name": alert.name,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": format_time(alert.starts_at, tz) if alert.starts_at else "",
        "ends_at": format_time(alert.ends_at, tz) if alert.ends_at else "",
        "generator_url": alert.generator_url,
        "silence_url": silence_url(external_url, alert.labels) or "",
        "fingerprint": alert.fingerprint,
    }
