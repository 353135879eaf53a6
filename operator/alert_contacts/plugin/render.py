"""Output of ``search`` and ``list``: a kubectl-like table, or the objects as JSON/YAML.

JSON and YAML hold a ``v1`` ``List`` of the full objects, as ``kubectl get -o
json`` does, so ``jq '.items[].metadata.name'`` works the same on both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import yaml

from alert_contacts.domain.conditions import READY, find_condition
from alert_contacts.domain.types import GROUP
from alert_contacts.domain.validation import display_name

Output = Literal["table", "json", "yaml", "name"]
OUTPUTS: tuple[Output, ...] = ("table", "json", "yaml", "name")
NONE = "-"  # a cell with nothing to show (a bot has no mobile; status not written yet)

_HEADERS = ("KIND", "NAME", "DISPLAY NAME", "MOBILE", "EMAIL", "READY", "REASON", "AGE")


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _cell(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return find_condition(status if isinstance(status, Mapping) else None, READY) or {}


def age(created: str | None, now: datetime) -> str:
    """Time since ``created`` the way kubectl shows it: 42s, 5m, 3h, 12d, 2y."""
    if not created:
        return NONE
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return NONE
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return "0s"  # clock skew between this machine and the API server
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def sort_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(_get(obj, "metadata", "namespace") or ""),
        str(_get(obj, "metadata", "name") or ""),
        str(obj.get("kind") or ""),
    )


def _key(obj: Mapping[str, Any], field: str) -> Any:
    # The normalised value, as `kubectl get` shows it (two spellings of one number
    # look alike); the value as written until the operator has normalised it.
    return _get(obj, "status", "normalized", field) or _get(obj, "spec", field)


def row(obj: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """One table row of a Contact or DingTalkBot (bots show no mobile or email)."""
    ready = ready_condition(obj)
    name = str(_get(obj, "metadata", "name") or "")
    spec = obj.get("spec")
    return (
        _cell(obj.get("kind")),
        _cell(name),
        _cell(display_name(spec if isinstance(spec, Mapping) else {}, name)),
        _cell(_key(obj, "mobile")),
        _cell(_key(obj, "email")),
        _cell(ready.get("status")),
        _cell(ready.get("reason")),
        age(_get(obj, "metadata", "creationTimestamp"), now),
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns three spaces apart, like kubectl's printer."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = []
    for cells in (headers, *rows):
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def object_table(
    objects: Sequence[Mapping[str, Any]], *, all_namespaces: bool, now: datetime | None = None
) -> str:
    when = now or datetime.now(UTC)
    headers: tuple[str, ...] = _HEADERS
    rows = [row(obj, when) for obj in objects]
    if all_namespaces:
        headers = ("NAMESPACE", *headers)
        rows = [(_cell(_get(obj, "metadata", "namespace")), *cells)
                for obj, cells in zip(objects, rows, strict=True)]
    return table(headers, rows)


def qualified_name(obj: Mapping[str, Any]) -> str:
    """``contact.alerting.contacts.dev/alice``: what ``kubectl get -o name`` prints."""
    return f"{str(obj.get('kind', '')).lower()}.{GROUP}/{_get(obj, 'metadata', 'name')}"


def short_name(obj: Mapping[str, Any]) -> str:
    """``contact/alice``: valid for kubectl, and what messages show."""
    return f"{str(obj.get('kind', '')).lower()}/{_get(obj, 'metadata', 'name')}"


def render(
    objects: Sequence[Mapping[str, Any]],
    output: Output,
    *,
    all_namespaces: bool,
    now: datetime | None = None,
) -> str:
    """The objects in the chosen format; the caller says "no resources found" for tables."""
    ordered = sorted(objects, key=sort_key)
    if output == "table":
        return object_table(ordered, all_namespaces=all_namespaces, now=now)
    if output == "name":
        return "".join(f"{qualified_name(obj)}\n" for obj in ordered)
    as_list = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [dict(obj) for obj in ordered],
    }
    if output == "json":
        return json.dumps(as_list, indent=4, ensure_ascii=False) + "\n"
    return yaml.safe_dump(as_list, sort_keys=False, allow_unicode=True)
