"""The admission decision for a Contact or DingTalkBot: plain data in, plain data out.

Admission is the fast path: it refuses what the operator can already see, with
the reconciler's ordering and messages. Updates are ratcheted: an edit is
refused only for what it makes worse (a new invalid value, a newly claimed key
that another object owns). A problem the object already had is the
reconciler's to report, so a duplicate's loser or an object that a settings
change made invalid can still be relabelled, renamed or fixed step by step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alert_contacts.domain.decisions import (
    admission_conflict,
    admission_quota_full,
    claim_owners,
    decide,
    describe_claim,
    sort_key,
)
from alert_contacts.domain.types import Candidate, ObjectRef, Reason, Verdict


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


def admit_claimant(
    verdict: Verdict,
    old: Verdict | None,
    ref: ObjectRef,
    created: str | None,
    others: Iterable[Candidate],
    quota: int,
) -> Admission:
    """Decide a CREATE (``old`` and ``created`` None) or an UPDATE of a claimant.

    ``others`` are the existing Contacts and DingTalkBots (this object's own
    entry is ignored). Codes: 422 invalid, 409 duplicate, 403 quota full.
    """
    others = [o for o in others if o.ref != ref]
    if verdict.reason is Reason.SECRET_NOT_FOUND:
        # GitOps may apply the Secret after the bot: admit, and let it wait.
        return Admission(warnings=(f"{verdict.message}; the bot stays not Ready until it exists",))
    if not verdict.valid:
        already = {(p.field, p.value) for p in old.problems} if old is not None else set()
        new = [p for p in verdict.problems if (p.field, p.value) not in already]
        if new:
            return Admission(422, verdict.reason, "; ".join(p.message for p in new))
        return Admission(warnings=(f"the spec is still invalid: {verdict.message}",))

    warnings: list[str] = []
    claimed_before = set(old.claims) if old is not None and old.valid else set()
    new_claims = tuple(c for c in verdict.claims if c not in claimed_before)
    conflict = admission_conflict(Verdict(claims=new_claims), ref, created, others)
    if conflict is not None:
        reason, message = conflict
        return Admission(409, reason, message)
    if new_claims != verdict.claims:
        still = admission_conflict(verdict, ref, created, others)
        if still is not None:
            warnings.append(f"{still[1]}; this object stays not Ready until that changes")
    if created is not None:
        if old is None or not old.valid or new_claims != verdict.claims:
            # Until now it did not count against the quota (invalid, or not the
            # owner of all its keys); once it does, creation order may put it
            # ahead of objects that are within the quota today.
            warnings.extend(_quota_warnings(Candidate(ref, created, verdict), others, quota))
        this = sort_key(Candidate(ref, created, verdict))
        owners = claim_owners(o for o in others if not set(o.verdict.claims).isdisjoint(new_claims))
        for claim in new_claims:
            owner = owners.get(claim)
            if owner is not None and sort_key(owner) > this:
                warnings.append(
                    f"{describe_claim(claim)} is used by {owner.ref}, created later: this older "
                    "object takes it over and that one becomes not Ready"
                )
    else:
        full = admission_quota_full(others, quota)
        if full is not None:
            return Admission(403, Reason.QUOTA_EXCEEDED, full)
    return Admission(warnings=tuple(warnings))


def _quota_warnings(this: Candidate, others: list[Candidate], quota: int) -> list[str]:
    """What an UPDATE that makes ``this`` count against the quota does to others."""
    before = decide(others, quota)
    if sum(1 for d in before.values() if d.within_quota) < quota:
        return []  # room to spare: nobody moves
    after = decide([*others, this], quota)
    warnings = [
        f"the quota of {quota} is full and this object was created before {ref}, which "
        "becomes QuotaExceeded"
        for ref, decision in before.items()
        if decision.within_quota and not after[ref].within_quota
    ]
    if after[this.ref].within_quota is False:
        warnings.append(f"the quota of {quota} is full: this object stays QuotaExceeded "
                        "until room frees up")
    return warnings
