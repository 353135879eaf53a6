"""Delivery feedback on the objects: ``status.delivery``, ``status.lastTest`` and the
``Delivering`` condition derived from them.

Two writers share a bot's status without stepping on each other: the delivery
engine merge-patches only ``status.delivery`` and ``status.lastTest``; the
reconciler owns ``status.conditions`` (a merge patch replaces the whole list)
and builds ``Delivering`` from ``status.delivery`` with
:func:`delivering_condition`. Written on change only: the same outcome again
writes nothing, except a refresh of ``time`` at most every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

DELIVERING = "Delivering"
DELIVERED = "Delivered"
# The same outcome again refreshes status.delivery.time at most this often.
REFRESH_SECONDS = 600.0
MESSAGE_MAX = 1024

DeliveryResult = Literal["Delivered", "Failed", "Retrying"]
TestResult = Literal["Succeeded", "Failed"]

# Fields that, when changed, make a write (time alone does not, within REFRESH_SECONDS).
_COMPARED = ("result", "reason", "code", "message")


class Outcome(Protocol):
    @property
    def kind(self) -> Literal["ok", "transient", "permanent"]: ...

    @property
    def reason(self) -> str: ...

    @property
    def code(self) -> int | None: ...

    @property
    def message(self) -> str: ...


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def result_of(outcome: Outcome) -> DeliveryResult:
    if outcome.kind == "ok":
        return "Delivered"
    return "Failed" if outcome.kind == "permanent" else "Retrying"


def delivery_record(outcome: Outcome, now: datetime, detail: str = "") -> dict[str, Any]:
    """One channel's last delivery as status shows it. Every key is present (None
    removes a stale value in a merge patch); the message holds the receiver's
    answer (DingTalk errcode text, SMTP reply), never a token or an address."""
    message = outcome.message or detail
    return {
        "time": rfc3339(now),
        "result": result_of(outcome),
        "reason": outcome.reason,
        "code": outcome.code,
        "message": message[:MESSAGE_MAX] if message else None,
    }


def changed(current: Any, record: Mapping[str, Any], now: datetime,
            refresh: float = REFRESH_SECONDS) -> bool:
    """Whether ``record`` should be written over ``current`` (what status holds)."""
    if not isinstance(current, Mapping):
        return True
    if any(current.get(k) != record.get(k) for k in _COMPARED):
        return True
    written = _parse(current.get("time"))
    return written is None or (now - written).total_seconds() >= refresh


def bot_delivery_patch(status: Mapping[str, Any], outcome: Outcome,
                       now: datetime) -> dict[str, Any] | None:
    """The merge patch recording a bot's delivery outcome, or None when status
    already says so."""
    record = delivery_record(outcome, now)
    if not changed(status.get("delivery"), record, now):
        return None
    return {"status": {"delivery": record}}


def group_delivery_patch(status: Mapping[str, Any], channel: Literal["dingtalk", "email"],
                         outcome: Outcome, now: datetime,
                         detail: str = "") -> dict[str, Any] | None:
    """The merge patch recording a group's last delivery on one channel, or None."""
    current = status.get("delivery")
    current = current.get(channel) if isinstance(current, Mapping) else None
    record = delivery_record(outcome, now, detail)
    if not changed(current, record, now):
        return None
    return {"status": {"delivery": {channel: record}}}


def delivering_condition(
    status: Mapping[str, Any] | None, generation: int
) -> dict[str, Any] | None:
    """``Delivering`` from a bot's ``status.delivery``: True after a delivery, False
    after a failure (reason SignatureRejected, KeywordMissing, TokenNotFound,
    RateLimited, ...); absent until the bot was first used."""
    delivery = (status or {}).get("delivery")
    if not isinstance(delivery, Mapping) or not isinstance(delivery.get("result"), str):
        return None
    result = delivery["result"]
    reason = str(delivery.get("reason") or result)
    code = delivery.get("code")
    detail = str(delivery.get("message") or "")
    ok = result == "Delivered"
    if ok:
        message = "the last message was delivered"
    else:
        what = "failed" if result == "Failed" else "failed for now and is retried"
        message = f"the last delivery {what}: {reason}"
        if code is not None:
            message += f" (code {code})"
        if detail:
            message += f": {detail}"
    return {
        "type": DELIVERING,
        "status": "True" if ok else "False",
        "reason": DELIVERED if ok else reason,
        "message": message[:MESSAGE_MAX],
        "observedGeneration": generation,
    }


def with_delivering(desired: dict[str, Any], current: Mapping[str, Any] | None,
                    generation: int) -> dict[str, Any]:
    """A bot's desired status (from the reconciler) with ``Delivering`` appended when
    ``status.delivery`` exists: the reconciler's one call into this module."""
    found = delivering_condition(current, generation)
    if found is None:
        return desired
    return {**desired, "conditions": [*desired.get("conditions", []), found]}


def last_test(request: str, now: datetime, succeeded: bool, message: str) -> dict[str, Any]:
    result: TestResult = "Succeeded" if succeeded else "Failed"
    return {"request": request, "time": rfc3339(now), "result": result,
            "message": message[:MESSAGE_MAX]}


def send_test_pending(annotation: str | None, status: Mapping[str, Any]) -> bool:
    """A send-test annotation value not yet answered in ``status.lastTest.request``
    (restarts and repeated events do not send twice)."""
    if not annotation:
        return False
    recorded = status.get("lastTest")
    return not (isinstance(recorded, Mapping) and recorded.get("request") == annotation)
