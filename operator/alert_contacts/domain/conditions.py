"""Status building: metav1.Condition lists, the status patch and Ready transitions.

``Ready`` is the summary that ``kubectl wait`` and GitOps tools read; ``Stalled``
(kstatus: Failed) is set only while the object cannot become Ready without a
change. A reconcile that changes nothing must write nothing, so
``status_patch`` compares what the server holds with what we would write and
returns None when they agree; ``lastTransitionTime`` moves only when a
condition's status flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alert_contacts.domain.decisions import Decision
from alert_contacts.domain.types import Reason

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

READY = "Ready"
VALID = "Valid"
UNIQUE = "Unique"
WITHIN_QUOTA = "WithinQuota"
STALLED = "Stalled"

Condition = dict[str, Any]
Status = dict[str, Any]

# The condition fields we own; the server may add others, which we ignore.
_COMPARED_FIELDS = ("status", "reason", "message", "observedGeneration")


def now_rfc3339() -> str:
    """The current time as metav1.Time serialises it: RFC 3339, UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str, message: str, generation: int) -> Condition:
    """A metav1.Condition without lastTransitionTime (``merge_conditions`` adds it)."""
    return {
        "type": type_,
        "status": status,
        "reason": str(reason),
        "message": message,
        "observedGeneration": generation,
    }


def contact_conditions(decision: Decision, generation: int) -> list[Condition]:
    """Ready, Valid, Unique, WithinQuota and, while not ready, Stalled.

    Every reason a Contact or DingTalkBot is not ready (bad spec, missing
    secret, key owned by another object, quota full) needs a change by someone,
    so Stalled accompanies every not-Ready and is absent when Ready.
    """
    reason = decision.reason
    message = decision.message
    conditions = [condition(READY, TRUE if decision.ready else FALSE, reason, message, generation)]
    if decision.valid:
        conditions.append(condition(VALID, TRUE, Reason.VALID, "the spec is valid", generation))
    else:
        conditions.append(condition(VALID, FALSE, reason, message, generation))

    if decision.unique is None:
        conditions.append(
            condition(UNIQUE, UNKNOWN, reason, "not evaluated until the spec is valid", generation)
        )
    elif decision.unique:
        conditions.append(
            condition(UNIQUE, TRUE, Reason.UNIQUE, "no other object uses its keys", generation)
        )
    else:
        conditions.append(condition(UNIQUE, FALSE, reason, message, generation))

    if decision.within_quota is None:
        waiting_for = "the spec is valid" if not decision.valid else "the object is unique"
        conditions.append(
            condition(
                WITHIN_QUOTA, UNKNOWN, reason, f"not evaluated until {waiting_for}", generation
            )
        )
    elif decision.within_quota:
        conditions.append(
            condition(WITHIN_QUOTA, TRUE, Reason.WITHIN_QUOTA, "within the quota", generation)
        )
    else:
        conditions.append(condition(WITHIN_QUOTA, FALSE, reason, message, generation))

    if not decision.ready:
        conditions.append(condition(STALLED, TRUE, reason, message, generation))
    return conditions


def duplicate_of(decision: Decision) -> str | None:
    """The owner of the first key this object claims but does not own, as 'Kind ns/name'."""
    return str(decision.conflicts[0].owner) if decision.conflicts else None


def contact_status(decision: Decision, generation: int) -> Status:
    """Desired status of a Contact; ``None`` values remove stale ones."""
    return {
        "observedGeneration": generation,
        "normalized": dict(decision.normalized) or None,
        "duplicateOf": duplicate_of(decision),
        "conditions": contact_conditions(decision, generation),
    }


def bot_status(decision: Decision, generation: int) -> Status:
    """Desired status of a DingTalkBot (no ``normalized``: it would hold the token)."""
    return {
        "observedGeneration": generation,
        "duplicateOf": duplicate_of(decision),
        "conditions": contact_conditions(decision, generation),
    }


def _conditions_of(status: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not status:
        return []
    conditions = status.get("conditions")
    if not isinstance(conditions, Sequence) or isinstance(conditions, str):
        return []
    return [c for c in conditions if isinstance(c, Mapping)]


def find_condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for existing in _conditions_of(status):
        if existing.get("type") == type_:
            return existing
    return None


def merge_conditions(
    desired: list[Condition], existing: Sequence[Mapping[str, Any]] | None, now: str
) -> list[Condition]:
    """``desired`` with lastTransitionTime: kept from the existing condition of the
    same type while its status is unchanged, otherwise ``now``."""
    previous = {c.get("type"): c for c in existing or () if isinstance(c, Mapping)}
    merged: list[Condition] = []
    for wanted in desired:
        old = previous.get(wanted["type"])
        kept = old.get("lastTransitionTime") if old is not None else None
        same_status = old is not None and old.get("status") == wanted["status"]
        merged.append({**wanted, "lastTransitionTime": kept if same_status and kept else now})
    return merged


def _condition_view(conditions: Sequence[Mapping[str, Any]]) -> dict[Any, tuple[Any, ...]] | None:
    view = {c.get("type"): tuple(c.get(f) for f in _COMPARED_FIELDS) for c in conditions}
    # Two conditions of one type on the server is a state worth rewriting.
    return view if len(view) == len(conditions) else None


def _unchanged(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    for key, wanted in desired.items():
        if key == "conditions":
            have = _condition_view(_conditions_of(current))
            if have is None or have != _condition_view(wanted):
                return False
        elif wanted is None:
            if current.get(key) is not None:
                return False
        elif current.get(key) != wanted:
            return False
    return True


def _merge_patch(current: Any, desired: Any) -> Any:
    """RFC 7386 body turning ``current`` into ``desired``: keys gone become null."""
    if not isinstance(desired, Mapping):
        return desired
    have: Mapping[str, Any] = current if isinstance(current, Mapping) else {}
    patch = {key: _merge_patch(have.get(key), value) for key, value in desired.items()}
    patch |= {key: None for key in have if key not in desired}
    return patch


def status_patch(
    current_status: Mapping[str, Any] | None,
    desired_status: Mapping[str, Any],
    *,
    now: str | None = None,
) -> dict[str, Any] | None:
    """The merge-patch body for the status subresource, or None if nothing changes.

    Only the keys of ``desired_status`` are compared (the server and kopf may keep
    others in status). Conditions are compared by type, ignoring their order,
    lastTransitionTime and any extra keys; a desired ``None`` means absent.
    ``now`` defaults to the current time, taken only when a patch is needed.
    """
    current: Mapping[str, Any] = current_status or {}
    if _unchanged(current, desired_status):
        return None
    stamp = now if now is not None else now_rfc3339()
    body: dict[str, Any] = {}
    for key, wanted in desired_status.items():
        if key == "conditions":
            body[key] = merge_conditions(wanted, _conditions_of(current), stamp)
        elif wanted is None:
            if current.get(key) is not None:
                body[key] = None
        else:
            body[key] = _merge_patch(current.get(key), wanted)
    return {"status": body}


def transition(
    old_status: Mapping[str, Any] | None, new_status: Mapping[str, Any] | None
) -> tuple[str, str, str] | None:
    """(event type, reason, message) when Ready's status or reason changed, else None.

    Events are posted on transitions only, so a steady state posts nothing.
    """
    new = find_condition(new_status, READY)
    if new is None:
        return None
    old = find_condition(old_status, READY)
    if old is not None and (old.get("status"), old.get("reason")) == (
        new.get("status"),
        new.get("reason"),
    ):
        return None
    event_type = "Normal" if new.get("status") == TRUE else "Warning"
    return event_type, str(new.get("reason", "")), str(new.get("message", ""))
