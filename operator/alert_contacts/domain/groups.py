"""ContactGroup status: which members exist and are ready.

A group never refuses a member that does not exist yet (GitOps applies in any
order); it reports it. Missing and not-ready members are transient from the
group's point of view, so they set ``Reconciling`` (kstatus: InProgress), while
a group listing no members at all is ``Stalled`` until someone edits it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alert_contacts.domain.conditions import (
    FALSE,
    READY,
    STALLED,
    TRUE,
    Condition,
    Status,
    condition,
)
from alert_contacts.domain.types import ObjectRef, Reason

MEMBERS_RESOLVED = "MembersResolved"
RECONCILING = "Reconciling"

# Keeps messages well under metav1.Condition's 32 KiB limit; status lists stay complete.
_MAX_NAMES_IN_MESSAGE = 20

_MEMBER_LISTS = (("contacts", "Contact"), ("dingTalkBots", "DingTalkBot"))


def member_label(ref: ObjectRef) -> str:
    """``contact/alice``, ``dingtalkbot/oncall``: unambiguous, and valid for kubectl."""
    return f"{ref.kind.lower()}/{ref.name}"


def member_refs(namespace: str, spec: Mapping[str, Any]) -> list[ObjectRef]:
    """The distinct members a group spec lists, contacts first, in spec order."""
    refs: dict[ObjectRef, None] = {}
    for field, kind in _MEMBER_LISTS:
        names = spec.get(field) or ()
        for name in names:
            if isinstance(name, str) and name:
                refs[ObjectRef(kind, namespace, name)] = None
    return list(refs)


@dataclass(frozen=True)
class GroupDecision:
    """The outcome for one ContactGroup; ``missing``/``not_ready`` hold sorted labels."""

    namespace: str
    reason: Reason
    message: str
    total: int
    ready_count: int
    missing: tuple[str, ...] = ()
    not_ready: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.reason is Reason.ACCEPTED

    @property
    def summary(self) -> str:
        return f"{self.ready_count}/{self.total}"

    def members_status(self) -> dict[str, Any]:
        return {
            "ready": self.ready_count,
            "total": self.total,
            "summary": self.summary,
            "missing": list(self.missing),
            "notReady": list(self.not_ready),
        }


def _names(labels: Iterable[str]) -> str:
    labels = list(labels)
    shown = ", ".join(labels[:_MAX_NAMES_IN_MESSAGE])
    hidden = len(labels) - _MAX_NAMES_IN_MESSAGE
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _missing_message(namespace: str, missing: tuple[str, ...]) -> str:
    return f"members not found in namespace {namespace}: {_names(missing)}"


def _not_ready_message(not_ready: tuple[str, ...]) -> str:
    return f"members not ready: {_names(not_ready)}"


def evaluate_group(
    namespace: str, spec: Mapping[str, Any], ready: Mapping[ObjectRef, bool]
) -> GroupDecision:
    """Resolve a group's members against ``ready`` (existing members -> readiness;
    a member absent from it does not exist)."""
    refs = member_refs(namespace, spec)
    if not refs:
        return GroupDecision(
            namespace=namespace,
            reason=Reason.NO_MEMBERS,
            message="the group lists no contacts and no DingTalk bots",
            total=0,
            ready_count=0,
        )
    missing = tuple(sorted(member_label(r) for r in refs if r not in ready))
    not_ready = tuple(sorted(member_label(r) for r in refs if r in ready and not ready[r]))
    ready_count = len(refs) - len(missing) - len(not_ready)
    if missing:
        message = _missing_message(namespace, missing)
        if not_ready:
            message += f"; {_not_ready_message(not_ready)}"
        reason = Reason.MEMBERS_MISSING
    elif not_ready:
        message = _not_ready_message(not_ready)
        reason = Reason.MEMBERS_NOT_READY
    else:
        message = f"all {len(refs)} members are ready"
        reason = Reason.ACCEPTED
    return GroupDecision(
        namespace=namespace,
        reason=reason,
        message=message,
        total=len(refs),
        ready_count=ready_count,
        missing=missing,
        not_ready=not_ready,
    )


def group_conditions(decision: GroupDecision, generation: int) -> list[Condition]:
    """Ready, MembersResolved, and Reconciling (waiting for members) or Stalled
    (no members listed) while not ready."""
    reason = decision.reason
    conditions = [
        condition(READY, TRUE if decision.ready else FALSE, reason, decision.message, generation)
    ]
    if reason is Reason.NO_MEMBERS:
        conditions.append(condition(MEMBERS_RESOLVED, FALSE, reason, decision.message, generation))
    elif decision.missing:
        conditions.append(
            condition(
                MEMBERS_RESOLVED,
                FALSE,
                Reason.MEMBERS_MISSING,
                _missing_message(decision.namespace, decision.missing),
                generation,
            )
        )
    else:
        conditions.append(
            condition(
                MEMBERS_RESOLVED,
                TRUE,
                Reason.MEMBERS_RESOLVED,
                f"all {decision.total} members exist",
                generation,
            )
        )
    if reason is Reason.NO_MEMBERS:
        conditions.append(condition(STALLED, TRUE, reason, decision.message, generation))
    elif not decision.ready:
        conditions.append(condition(RECONCILING, TRUE, reason, decision.message, generation))
    return conditions


def group_status(decision: GroupDecision, generation: int) -> Status:
    """Desired status of a ContactGroup, for ``status_patch``."""
    return {
        "observedGeneration": generation,
        "members": decision.members_status(),
        "conditions": group_conditions(decision, generation),
    }
