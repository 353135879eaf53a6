"""User templates: Jinja2 in a sandbox, output capped, errors returned, never raised.

A template is input from a ConfigMap, not code of the operator, so it renders
in Jinja2's SandboxedEnvironment (no access to Python internals), with
undefined names as errors, bounded ``*``/``**``, one budget for range() across
the whole rendering, widths in `%`, `str.format` and padding capped, a time budget
per rendering and a cap on the output. Whatever goes wrong comes back as
text for the caller to fall back to the default rendering and report the error.
"""

from __future__ import annotations

import contextvars
import re
import string
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
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

MAX_FORMAT_WIDTH = 1000
"""Largest width or precision in ``%``, ``str.format`` and padding: ``"%99999999d" % 1``
builds 100 MB before the output cap could see it."""
MAX_RENDER_SECONDS = 0.25
"""Time one rendering may take: loops that print nothing are stopped by no other cap
(it runs on the event loop; past it, the default rendering stands in)."""
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})

_range_budget: contextvars.ContextVar[int] = contextvars.ContextVar("range_budget", default=0)


@dataclass(frozen=True)
class TemplateResult:
    """The rendered text, or None and the error (for the default rendering to stand in)."""

    text: str | None
    error: str | None = None


def _check_width(value: str | int) -> None:
    if value == "*" or (isinstance(value, int | str) and int(value) > MAX_FORMAT_WIDTH):
        raise SecurityError(f"a width or precision over {MAX_FORMAT_WIDTH} (or '*')")


def _check_percent_format(fmt: str) -> None:
    for match in _PERCENT_FIELD.finditer(fmt):
        for number in match.groups():
            if number is not None:
                _check_width(number)


def _check_format_string(fmt: str) -> None:
    for _, field_name, spec, _ in string.Formatter().parse(fmt):
        if field_name is None or not spec:
            continue
        if "{" in spec:
            raise SecurityError("a nested field in a format spec")
        for number in re.findall(r"\d+", spec):
            _check_width(number)


def _bounded_filter(original: Callable[..., Any], check: Callable[..., None]
                    ) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)
    return bounded


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent_format(str(value))


def _check_width_args(value: Any, *args: Any, **kwargs: Any) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool):
            _check_width(arg)


class _BoundedSandbox(SandboxedEnvironment):
    # '*' and '**' can build gigabytes from a few characters ("x" * 10**10); so can '%'
    # with a width.
    intercepted_binops = frozenset({"*", "**", "%"})

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(str(value.__self__))
        return wrapped

    def call(__self, __context: Any, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        if (isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str)
                and __obj.__name__ in _PADDING_METHODS):
            _check_width_args(None, *args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            _check_percent_format(left)
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
    env.filters["format"] = _bounded_filter(env.filters["format"], _check_format_filter)
    for name in ("center", "indent"):
        env.filters[name] = _bounded_filter(env.filters[name], _check_width_args)
    return env


class _OutOfTime(Exception):
    pass


def _deadline_tracer(deadline: float) -> Callable[..., Any]:
    """A trace function that stops template code (compiled from "<template>") once the
    deadline is past: checked on every line the template runs, loops included."""
    def on_line(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line" and time.monotonic() > deadline:
            raise _OutOfTime
        return on_line

    def on_call(frame: types.FrameType, event: str, arg: Any) -> Any:
        return on_line if frame.f_code.co_filename == "<template>" else None
    return on_call


_ENVIRONMENTS = {False: _environment(False), True: _environment(True)}


def render_template(
    source: str,
    context: Mapping[str, Any],
    *,
    html: bool = False,
    max_bytes: int = MAX_TEMPLATE_OUTPUT,
    max_seconds: float = MAX_RENDER_SECONDS,
) -> TemplateResult:
    """Render a user template in the sandbox; never raises.

    ``html`` turns autoescaping on (for the HTML part of an email). Output past
    ``max_bytes`` stops the rendering and is reported as an error.
    """
    if len(source.encode()) > MAX_TEMPLATE_SOURCE:
        return TemplateResult(None, f"the template is longer than {MAX_TEMPLATE_SOURCE} bytes")
    env = _ENVIRONMENTS[html]
    budget = _range_budget.set(MAX_RANGE_ITEMS)
    tracing = sys.gettrace()
    sys.settrace(_deadline_tracer(time.monotonic() + max_seconds))
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
    except _OutOfTime:
        return TemplateResult(None, f"the template took longer than {max_seconds:g}s "
                                    "(time budget)")
    except SecurityError as exc:
        return TemplateResult(None, _error("refused by the sandbox", exc))
    except TemplateError as exc:
        return TemplateResult(None, _error(type(exc).__name__, exc))
    except RecursionError:
        return TemplateResult(None, "the template recursed too deeply")
    except Exception as exc:  # a user template must never crash delivery
        return TemplateResult(None, _error(type(exc).__name__, exc))
    finally:
        sys.settrace(tracing)
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
