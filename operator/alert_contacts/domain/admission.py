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
