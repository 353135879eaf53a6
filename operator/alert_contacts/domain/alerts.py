"""Alertmanager's webhook payload (version "4") as pydantic models.

Alertmanager posts one *notification* per alert group: the group's key and
labels, and the alerts in it, firing and resolved. Fields Alertmanager may add
in later releases are tolerated; a payload that is not JSON, names another
version or has no ``alerts`` list is refused with a message naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PAYLOAD_VERSION = "4"

AlertStatus = Literal["firing", "resolved"]


class PayloadError(ValueError):
    """The request body is not an Alertmanager notification; the message says why."""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _zero_to_none(value: Any) -> Any:
    # Alertmanager writes Go's zero time ("0001-01-01T00:00:00Z") for "not set".
    if value in (None, "") or (isinstance(value, str) and value.startswith("0001-01-01")):
        return None
    return value


class Alert(_Payload):
    status: AlertStatus
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    _zero_times = field_validator("starts_at", "ends_at", mode="before")(_zero_to_none)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status == "firing"


class Notification(_Payload):
    version: str
    status: AlertStatus
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert]

    @field_validator("version", mode="before")
    @classmethod
    def _version_4(cls, value: Any) -> Any:
        if value != PAYLOAD_VERSION:
            raise ValueError(
                f"must be {PAYLOAD_VERSION!r} (Alertmanager's webhook payload version),"
                f" not {value!r}"
            )
        return value

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")


def parse_notification(data: bytes) -> Notification:
    """The notification in a webhook request body, or PayloadError naming the field."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(document, dict):
        raise PayloadError(f"the body must be a JSON object, not {type(document).__name__}")
    if "version" not in document:
        raise PayloadError("version: is required (Alertmanager's webhook payload has \"4\")")
    if "alerts" not in document:
        raise PayloadError("alerts: is required (a list of alerts)")
    try:
        return Notification.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        field = ""
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{field or 'body'}: {message}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


# ---------------------------------------------------------------- shared by the renderers


def notification_title(notification: Notification) -> str:
    """``[FIRING:2] HighLatency (team-a/api)``: the status, the count, the common labels."""
    firing = len(notification.firing)
    if notification.status == "firing":
        head = f"[FIRING:{firing}]"
    else:
        head = f"[RESOLVED:{len(notification.resolved)}]"
    names = dict.fromkeys(a.name for a in notification.alerts if a.name)
    name = notification.common_labels.get("alertname") or ", ".join(names) or "alerts"
    where = [
        notification.common_labels[key]
        for key in ("namespace", "service", "job", "instance")
        if notification.common_labels.get(key) and key in notification.group_labels
    ] or [
        v for k, v in sorted(notification.group_labels.items()) if k != "alertname" and v
    ][:2]
    suffix = f" ({'/'.join(where)})" if where else ""
    return f"{head} {name}{suffix}"


def format_time(moment: datetime, tz: tzinfo) -> str:
    """``2026-11-26 19:20:00 CST``: the moment in the configured zone, with its abbreviation."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def silence_url(external_url: str, labels: Mapping[str, str]) -> str | None:
    """Alertmanager's new-silence page prefilled with the alert's labels, or None."""
    if not is_http_url(external_url) or not labels:
        return None
    matchers = ",".join(f'{k}="{_matcher_value(v)}"' for k, v in sorted(labels.items()))
    base = external_url.rstrip("/")
    return f"{base}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def _matcher_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
