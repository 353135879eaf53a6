"""Uniqueness and quota: one pure function of the current set of objects.

Every valid Contact or DingTalkBot claims its keys (normalised mobile, email,
webhook access token). The owner of a key is its earliest *continuous*
claimant: claimants are ordered by the time each started claiming the key
(``Candidate.claimed_since``, read from status by ``domain.tenure``), then
creation time, namespace, name and kind. An object is unique iff it owns all
its keys. Among valid and unique objects, ordered by the time each became
eligible (``Candidate.eligible_since``), the first ``quota`` are within quota.
So an edit to one object, or a Secret appearing late, never takes a key or a
slot from an object that holds it: the edited object queues behind.

Because the answer depends only on the set of objects (and the times their
statuses record), reconciling in any order, after any race, converges to the
same decisions. ``domain.engine`` keeps the same answer up to date one change
at a time; this function is its reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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

SortKey = tuple[str, str, str, str, str]


def sort_key(candidate: Candidate) -> SortKey:
    """The quota order of an eligible candidate (total: kind breaks the last tie)."""
    return candidate.eligible_key()


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
    valid and unique objects in the quota order (by the time each became eligible).
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


def quota_message(quota: int, in_use: int) -> str:
    """Why an eligible object is QuotaExceeded. The same text for every waiting object, so
    a slot freeing up rewrites the one object that gets it, not every one queued behind."""
    return (f"quota of {quota} contacts and DingTalk bots is full ({in_use} in use); this "
            "object gets the next free slot after those that became valid and unique before it")


def claim_owners(candidates: Iterable[Candidate]) -> dict[Claim, Candidate]:
    """The owner of every claimed key: its earliest valid claimant. O(total claims)."""
    owners: dict[Claim, Candidate] = {}
    for candidate in candidates:
        if not candidate.verdict.valid:
            continue
        for claim in candidate.verdict.claims:
            current = owners.get(claim)
            if current is None or candidate.claim_key(claim) < current.claim_key(claim):
                owners[claim] = candidate
    return owners


def owner_of(claim: Claim, candidates: Iterable[Candidate]) -> Candidate | None:
    """The earliest valid claimant of ``claim``, or None when nobody valid claims it."""
    return claim_owners(c for c in candidates if claim in c.verdict.claims).get(claim)


def conflicts_of(candidate: Candidate, owner: Callable[[Claim], ObjectRef]) -> tuple[Conflict, ...]:
    """The keys ``candidate`` claims but does not own, in the order their reasons block."""
    return sorted_conflicts(
        Conflict(claim, owner(claim))
        for claim in set(candidate.verdict.claims)
        if owner(claim) != candidate.ref
    )


def duplicate_decision(verdict: Verdict, conflicts: tuple[Conflict, ...]) -> Decision:
    return Decision(
        valid=True,
        unique=False,
        within_quota=None,
        reason=conflicts[0].reason,
        message="; ".join(c.message for c in conflicts),
        normalized=dict(verdict.normalized),
        conflicts=conflicts,
    )


def eligible_decision(verdict: Verdict, position: int, quota: int) -> Decision:
    """A valid and unique object at ``position`` (1-based) in the quota order."""
    within = position <= quota
    return Decision(
        valid=True,
        unique=True,
        within_quota=within,
        reason=Reason.ACCEPTED if within else Reason.QUOTA_EXCEEDED,
        message=READY_MESSAGE if within else quota_message(quota, max(quota, 0)),
        normalized=dict(verdict.normalized),
        position=position,
    )


def sorted_conflicts(conflicts: Iterable[Conflict]) -> tuple[Conflict, ...]:
    return tuple(sorted(conflicts, key=lambda c: (_CLAIM_PRIORITY[c.claim.kind], c.claim.value)))


def invalid_decision(verdict: Verdict) -> Decision:
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
    owners = claim_owners(by_ref.values())
    decisions: dict[ObjectRef, Decision] = {}
    eligible: list[Candidate] = []
    for candidate in by_ref.values():
        verdict = candidate.verdict
        if not verdict.valid:
            decisions[candidate.ref] = invalid_decision(verdict)
            continue
        conflicts = conflicts_of(candidate, lambda claim: owners[claim].ref)
        if conflicts:
            decisions[candidate.ref] = duplicate_decision(verdict, conflicts)
        else:
            eligible.append(candidate)
    eligible.sort(key=sort_key)
    for position, candidate in enumerate(eligible, start=1):
        decisions[candidate.ref] = eligible_decision(candidate.verdict, position, quota)
    return decisions
