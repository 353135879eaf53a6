"""Uniqueness and quota: one pure function of the current set of objects.

Every valid Contact or DingTalkBot claims its keys (normalised mobile, email,
webhook access token). The owner of a key is its valid claimant that comes
first in creation order; an object is unique iff it owns all its keys; among
valid and unique objects the first ``quota`` are within quota. Because the
answer depends only on the set of objects, reconciling in any order, after any
race, converges to the same decisions. The admission webhook asks the same
questions through ``admission_conflict`` and ``admission_quota_full``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from alert_contacts.domain.types import Candidate, Claim, ObjectRef, Reason, Verdict

_DUPLICATE_REASONS: dict[str, Reason] = {
    "mobile": Reason.DUPLICATE_MOBILE,
    "email": Reason.DUPLICATE_EMAIL,
    "webhook": Reason.DUPLICATE_WEBHOOK,
}
# The order in which duplicate reasons block: the first one becomes the reason.
_CLAIM_PRIORITY: dict[str, int] = {"mobile": 0, "email": 1, "webhook": 2}
_INVALID_REASONS = frozenset({Reason.INVALID_SPEC, Reason.SECRET_NOT_FOUND})
# A shorter token would be mostly revealed by its last four characters.
_TOKEN_HINT_MIN_LENGTH = 12

READY_MESSAGE = "valid, unique and within the quota"

SortKey = tuple[str, str, str, str]


def sort_key(candidate: Candidate) -> SortKey:
    """``order_key`` made total: a Contact and a DingTalkBot may share namespace,
    name and creation second, and the quota order must not depend on input order."""
    return (*candidate.order_key, candidate.ref.kind)


def describe_claim(claim: Claim) -> str:
    """The field and value of a key, fit for status and admission messages.

    A webhook access token is a credential: only its last four characters are shown.
    """
    if claim.kind == "webhook":
        if len(claim.value) < _TOKEN_HINT_MIN_LENGTH:
            return "webhook access token"
        return f"webhook access token (ending …{claim.value[-4:]})"
    return f"{claim.kind} {claim.value}"


@dataclass(frozen=True)
class Conflict:
    """A key this object claims but ``owner`` (an earlier claimant) owns."""

    claim: Claim
    owner: ObjectRef

    @property
    def reason(self) -> Reason:
        return _DUPLICATE_REASONS[self.claim.kind]

    @property
    def message(self) -> str:
        return f"{describe_claim(self.claim)} is already used by {self.owner}"


@dataclass(frozen=True)
class Decision:
    """The outcome for one Contact or DingTalkBot.

    ``valid``/``unique``/``within_quota`` mirror the conditions: ``None`` means
    not evaluated (uniqueness is not evaluated for an invalid object, quota not
    for an invalid or duplicate one). ``position`` is the 1-based place among
    valid and unique objects in creation order.
    """

    valid: bool
    unique: bool | None
    within_quota: bool | None
    reason: Reason
    message: str
    normalized: dict[str, str] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    position: int | None = None

    @property
    def ready(self) -> bool:
        return self.valid and self.unique is True and self.within_quota is True


def quota_message(quota: int, in_use: int, position: int | None = None) -> str:
    message = f"quota of {quota} contacts and DingTalk bots is full ({in_use} in use)"
    if position is not None:
        message += f"; this object is number {position} in creation order"
    return message


def claim_owners(candidates: Iterable[Candidate]) -> dict[Claim, Candidate]:
    """The owner of every claimed key: its earliest valid claimant. O(total claims)."""
    owners: dict[Claim, Candidate] = {}
    for candidate in candidates:
        if not candidate.verdict.valid:
            continue
        for claim in candidate.verdict.claims:
            current = owners.get(claim)
            if current is None or sort_key(candidate) < sort_key(current):
                owners[claim] = candidate
    return owners


def owner_of(claim: Claim, candidates: Iterable[Candidate]) -> Candidate | None:
    """The earliest valid claimant of ``claim``, or None when nobody valid claims it."""
    return claim_owners(c for c in candidates if claim in c.verdict.claims).get(claim)


def _sorted_conflicts(conflicts: Iterable[Conflict]) -> tuple[Conflict, ...]:
    return tuple(sorted(conflicts, key=lambda c: (_CLAIM_PRIORITY[c.claim.kind], c.claim.value)))


def _invalid_decision(verdict: Verdict) -> Decision:
    reason = verdict.reason if verdict.reason in _INVALID_REASONS else Reason.INVALID_SPEC
    return Decision(
        valid=False,
        unique=None,
        within_quota=None,
        reason=reason,
        message=verdict.message,
        normalized=dict(verdict.normalized),
    )


def decide(candidates: Iterable[Candidate], quota: int) -> dict[ObjectRef, Decision]:
    """Decide every Contact and DingTalkBot at once. O(n log n) in the number of objects.

    Refs are expected to be distinct; should one repeat, its last occurrence counts.
    """
    by_ref = {candidate.ref: candidate for candidate in candidates}
    ordered = sorted(by_ref.values(), key=sort_key)
    owners = claim_owners(ordered)
    decisions: dict[ObjectRef, Decision] = {}
    position = 0
    for candidate in ordered:
        verdict = candidate.verdict
        if not verdict.valid:
            decisions[candidate.ref] = _invalid_decision(verdict)
            continue
        conflicts = _sorted_conflicts(
            Conflict(claim, owners[claim].ref)
            for claim in set(verdict.claims)
            if owners[claim].ref != candidate.ref
        )
        if conflicts:
            decisions[candidate.ref] = Decision(
                valid=True,
                unique=False,
                within_quota=None,
                reason=conflicts[0].reason,
                message="; ".join(c.message for c in conflicts),
                normalized=dict(verdict.normalized),
                conflicts=conflicts,
            )
            continue
        position += 1
        within = position <= quota
        decisions[candidate.ref] = Decision(
            valid=True,
            unique=True,
            within_quota=within,
            reason=Reason.ACCEPTED if within else Reason.QUOTA_EXCEEDED,
            message=READY_MESSAGE if within else quota_message(quota, max(quota, 0), position),
            normalized=dict(verdict.normalized),
            position=position,
        )
    return decisions


def admission_conflict(
    verdict: Verdict, ref: ObjectRef, created: str | None, others: Iterable[Candidate]
) -> tuple[Reason, str] | None:
    """The duplicate-key refusal for an object being admitted, or None.

    On CREATE (``created`` is None) the new object sorts after every existing
    one, so any existing valid claimant of one of its keys wins. On UPDATE the
    object keeps its creationTimestamp and only an earlier claimant wins. The
    conflicting object named is the key's owner, as the reconciler would name it.
    """
    if not verdict.valid or not verdict.claims:
        return None
    wanted = set(verdict.claims)
    owners = claim_owners(
        other
        for other in others
        if other.ref != ref and not wanted.isdisjoint(other.verdict.claims)
    )
    this_key = None if created is None else sort_key(Candidate(ref, created, verdict))
    conflicts = _sorted_conflicts(
        Conflict(claim, owner.ref)
        for claim, owner in owners.items()
        if claim in wanted and (this_key is None or sort_key(owner) < this_key)
    )
    if not conflicts:
        return None
    return conflicts[0].reason, "; ".join(c.message for c in conflicts)


def admission_quota_full(others: Iterable[Candidate], quota: int) -> str | None:
    """The quota refusal for a CREATE, or None while the quota has room."""
    # Valid objects that own all their keys: what decide() counts, without its sort.
    others = list(others)
    owners = claim_owners(others)
    in_use = sum(
        1 for c in others
        if c.verdict.valid and all(owners[claim] is c for claim in c.verdict.claims)
    )
    if in_use < quota:
        return None
    return quota_message(quota, min(in_use, max(quota, 0)))
