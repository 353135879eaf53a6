"""The whole-cluster decision: every object's desired status from the current set.

``plan_status`` is the pure function DESIGN.md asks for: given what the watch
holds (objects, their current status and the Secrets they reference) it
returns the status writes and Events that make the cluster agree with it, and
nothing for objects that already agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alert_contacts.domain.conditions import bot_status, contact_status, status_patch, transition
from alert_contacts.domain.decisions import Decision, decide
from alert_contacts.domain.feedback import with_delivering
from alert_contacts.domain.groups import GroupDecision, evaluate_group, group_status
from alert_contacts.domain.records import ObjectRecord, secret_value
from alert_contacts.domain.tenure import claim_records, eligible_record, order_time, tenure
from alert_contacts.domain.types import Candidate, NotOpaque, ObjectRef, Verdict
from alert_contacts.domain.validation import (
    display_name,
    scrub_personal_data,
    validate_bot,
    validate_contact,
)
from alert_contacts.settings import Settings

SecretIndex = Mapping[tuple[str, str], Mapping[str, str]]


@dataclass(frozen=True)
class StatusWrite:
    ref: ObjectRef
    uid: str
    seen: Mapping[str, Any]  # the status the watch showed when this write was planned
    desired: dict[str, Any]  # the status this write converges to
    patch: dict[str, Any]  # the merge patch that gets there from ``seen``
    event: tuple[str, str, str] | None  # (type, reason, message) on a Ready transition


@dataclass(frozen=True)
class Plan:
    writes: list[StatusWrite]
    ready: dict[ObjectRef, bool]
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, reason)
    in_quota: int = 0


def event(
    old_status: Mapping[str, Any], new_status: Mapping[str, Any]
) -> tuple[str, str, str] | None:
    """The Event for a Ready transition, if any.

    Events travel further than status (exporters ship them to log stores), so
    mobile numbers and emails in the message are redacted; status keeps them.
    """
    found = transition(old_status, new_status)
    if found is None:
        return None
    type_, reason, message = found
    return type_, reason, scrub_personal_data(message)


def bot_verdict(record: ObjectRecord, secrets: SecretIndex, settings: Settings) -> Verdict:
    namespace = record.ref.namespace

    def resolve(name: str, key: str) -> str | NotOpaque | None:
        return secret_value(secrets.get((namespace, name)), key)

    return validate_bot(record.spec, resolve, settings)


def contact_verdict(record: ObjectRecord, settings: Settings) -> Verdict:
    return record.verdict if record.verdict is not None else validate_contact(
        record.spec, settings
    )


def candidate_of(record: ObjectRecord, verdict: Verdict) -> Candidate:
    """``record`` as the ordering sees it, with the tenure its status records."""
    created = order_time(record.created) or record.created
    if not verdict.valid:
        return Candidate(record.ref, created, verdict)
    since, eligible = tenure(
        verdict.claims, uid=record.uid, created=created, generation=record.generation,
        status=record.status,
    )
    return Candidate(record.ref, created, verdict, since, eligible)


def candidates(
    contacts: Iterable[ObjectRecord],
    bots: Iterable[ObjectRecord],
    secrets: SecretIndex,
    settings: Settings,
) -> list[Candidate]:
    """Contacts and bots as the ordering sees them (both count against quota)."""
    found = [candidate_of(r, contact_verdict(r, settings)) for r in contacts]
    found += [candidate_of(r, bot_verdict(r, secrets, settings)) for r in bots]
    return found


def claimant_status(
    record: ObjectRecord, candidate: Candidate, decision: Decision, since_now: str
) -> dict[str, Any]:
    """Desired status of a Contact or DingTalkBot: conditions plus the tenure records
    (``since_now``, an ``order_time``, is what a claim or eligibility new in this pass gets)."""
    build = contact_status if record.ref.kind == "Contact" else bot_status
    status = build(decision, record.generation)
    status["displayName"] = display_name(record.spec, record.ref.name)
    if record.ref.kind == "DingTalkBot":  # Delivering comes from status.delivery
        status = with_delivering(status, record.status, record.generation)
    claims = candidate.verdict.claims if candidate.verdict.valid else ()
    status["claims"] = claim_records(claims, candidate.claimed_since, record.uid, since_now)
    status["eligibleSince"] = eligible_record(
        decision.unique is True, candidate.eligible_since, since_now
    )
    return status


def group_desired_status(record: ObjectRecord, group: GroupDecision) -> dict[str, Any]:
    """Desired status of a ContactGroup (``group``: ``evaluate_group`` of it)."""
    status = group_status(group, record.generation)
    # The Display Name column: metadata.name when spec.displayName is absent or blank.
    status["displayName"] = display_name(record.spec, record.ref.name)
    return status


def status_write(
    record: ObjectRecord, desired: dict[str, Any], now: str
) -> StatusWrite | None:
    """The write that turns ``record``'s status into ``desired``, or None when they agree."""
    patch = status_patch(record.status, desired, now=now)
    if patch is None:
        return None
    return StatusWrite(
        record.ref, record.uid, record.status, desired, patch, event(record.status, patch["status"])
    )


def plan_status(
    contacts: Iterable[ObjectRecord],
    bots: Iterable[ObjectRecord],
    groups: Iterable[ObjectRecord],
    secrets: SecretIndex,
    settings: Settings,
    now: str,
    since_now: str | None = None,
) -> Plan:
    """``now`` stamps lastTransitionTime; ``since_now`` (default: ``now``) the tenure
    records new in this pass."""
    contacts, bots = list(contacts), list(bots)
    stamp = since_now or order_time(now) or now
    found = {c.ref: c for c in candidates(contacts, bots, secrets, settings)}
    decisions: dict[ObjectRef, Decision] = decide(found.values(), settings.quota)
    writes: list[StatusWrite] = []
    reasons: Counter[tuple[str, str]] = Counter()
    ready: dict[ObjectRef, bool] = {}

    def want(record: ObjectRecord, desired: dict[str, Any], reason: str) -> None:
        reasons[(record.ref.kind, reason)] += 1
        write = status_write(record, desired, now)
        if write is not None:
            writes.append(write)

    for record in [*contacts, *bots]:
        decision = decisions[record.ref]
        ready[record.ref] = decision.ready
        want(record, claimant_status(record, found[record.ref], decision, stamp), decision.reason)
    for record in groups:
        group = evaluate_group(record.ref.namespace, record.spec, ready)
        want(record, group_desired_status(record, group), group.reason)
    in_quota = sum(1 for d in decisions.values() if d.within_quota is True)
    return Plan(writes, ready, reasons, in_quota)
