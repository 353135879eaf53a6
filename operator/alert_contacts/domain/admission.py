"""The admission decision for a Contact or DingTalkBot: plain data in, plain data out.

Admission is the fast path: it refuses what the operator can already see, with
the reconciler's ordering and messages, asking the decision engine (owner of a
key, slots in use, this object's current decision) rather than re-deriving
the cluster. Updates are ratcheted: an edit is refused only for what it makes
worse -- a new invalid value (422), a newly claimed key that another object
owns (409), or a quota slot it did not hold while the quota is full (403). A
newly claimed key or a new eligibility is recorded from the time of the edit
(``domain.tenure``), so an admitted edit never takes a key or a slot from
another object. A problem the object already had is the reconciler's to
report, so a duplicate's loser or an object that a settings change made
invalid can still be relabelled, renamed or fixed step by step. Warnings name
the object whose state an admitted edit changes, and only then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from alert_contacts.domain.decisions import (
    Conflict,
    Decision,
    describe_claim,
    quota_message,
    sorted_conflicts,
)
from alert_contacts.domain.types import Claim, ObjectRef, Reason, Verdict


class ClaimantView(Protocol):
    """What admission asks of the current set (``domain.engine.DecisionEngine``)."""

    def owner(self, claim: Claim, *, excluding: ObjectRef | None = None) -> ObjectRef | None: ...
    def in_use(self, *, excluding: ObjectRef | None = None) -> int: ...
    def waiting(self, after: int) -> ObjectRef | None: ...
    def position(self, ref: ObjectRef) -> int | None: ...
    def __contains__(self, ref: object) -> bool: ...
    def decision(self, ref: ObjectRef) -> Decision: ...


@dataclass(frozen=True)
class Admission:
    """Allowed when ``code`` is None; otherwise the HTTP code, reason and message."""

    code: int | None = None
    reason: str = "Allowed"
    message: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.code is None


def _conflict_text(conflicts: list[Conflict]) -> tuple[Reason, str]:
    ordered = sorted_conflicts(conflicts)  # the reconciler's order: mobile, email, webhook
    return ordered[0].reason, "; ".join(c.message for c in ordered)


def admit_claimant(
    verdict: Verdict,
    old: Verdict | None,
    ref: ObjectRef,
    view: ClaimantView,
    quota: int,
) -> Admission:
    """Decide a CREATE (``old`` None) or an UPDATE of a Contact or DingTalkBot.

    Codes: 422 invalid, 409 duplicate, 403 quota full.
    """
    current = view.decision(ref) if old is not None and ref in view else None
    held_slot = current is not None and current.within_quota is True
    if verdict.reason is Reason.SECRET_NOT_FOUND:
        # GitOps may apply the Secret after the bot: admit, and let it wait.
        waits = [f"{verdict.message}; the bot stays not Ready until it exists"]
        return Admission(warnings=(*waits, *(_frees_slot(ref, view, quota) if held_slot else [])))
    if not verdict.valid:
        already = {(p.field, p.value) for p in old.problems} if old is not None else set()
        new = [p for p in verdict.problems if (p.field, p.value) not in already]
        if new:
            return Admission(422, verdict.reason, "; ".join(p.message for p in new))
        return Admission(warnings=(f"the spec is still invalid: {verdict.message}",))

    claimed_before = set(old.claims) if old is not None and old.valid else set()
    new_claims = [c for c in sorted(set(verdict.claims)) if c not in claimed_before]
    taken = [
        Conflict(claim, owner)
        for claim in new_claims
        if (owner := view.owner(claim, excluding=ref)) is not None
    ]
    if taken:
        return Admission(409, *_conflict_text(taken))

    warnings: list[str] = []
    # Keys it kept: it owns them or not, as before the edit.
    kept = set(verdict.claims) & claimed_before
    losing = [c for c in (current.conflicts if current is not None else ()) if c.claim in kept]
    if losing:
        warnings.append(f"{_conflict_text(losing)[1]}; this object stays not Ready until "
                        "that changes")
    needs_slot = not losing and (current is None or current.unique is not True)
    if needs_slot and view.in_use(excluding=ref) >= quota:
        return Admission(403, Reason.QUOTA_EXCEEDED, quota_message(quota, max(quota, 0)))
    if current is not None and current.unique is True:
        for claim in sorted(claimed_before - set(verdict.claims)):
            heir = view.owner(claim, excluding=ref)
            if heir is not None:
                warnings.append(f"{describe_claim(claim)} is no longer claimed by this object: "
                                f"{heir}, which also claims it, becomes its owner")
    return Admission(warnings=tuple(warnings))


def _frees_slot(ref: ObjectRef, view: ClaimantView, quota: int) -> list[str]:
    """The warning for an edit that gives up a quota slot another object waits for."""
    heir = view.waiting(quota)
    if heir is None or heir == ref:
        return []
    return [f"this object gives up its quota slot: {heir}, next in line, becomes WithinQuota"]
