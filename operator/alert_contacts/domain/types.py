"""Plain data shared by the validation and decision functions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

GROUP = "alerting.contacts.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

class Reason(enum.StrEnum):
    """Stable CamelCase condition reasons (part of the API: tools match on them)."""

    ACCEPTED = "Accepted"
    VALID = "Valid"
    UNIQUE = "Unique"
    WITHIN_QUOTA = "WithinQuota"
    INVALID_SPEC = "InvalidSpec"
    SECRET_NOT_FOUND = "SecretNotFound"
    DUPLICATE_MOBILE = "DuplicateMobile"
    DUPLICATE_EMAIL = "DuplicateEmail"
    DUPLICATE_WEBHOOK = "DuplicateWebhook"
    QUOTA_EXCEEDED = "QuotaExceeded"
    MEMBERS_RESOLVED = "MembersResolved"
    MEMBERS_MISSING = "MembersMissing"
    MEMBERS_NOT_READY = "MembersNotReady"
    NO_MEMBERS = "NoMembers"


@dataclass(frozen=True)
class NotOpaque:
    """A Secret that exists but is of a type the operator does not read (only Opaque)."""

    secret_type: str


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """Identity of one namespaced object of ours."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


ClaimKind = Literal["mobile", "email", "webhook"]


@dataclass(frozen=True, order=True, slots=True)
class Claim:
    """A key that at most one object cluster-wide may own (value is normalised)."""

    kind: ClaimKind
    value: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a spec is refused: the field, the offending value and why.

    ``value`` is the user's own input and goes into status and admission
    responses; use ``validation.redact`` for anything written to logs.
    """

    field: str
    value: str | None
    reason: str

    @property
    def message(self) -> str:
        if self.value is None:
            return f"{self.field}: {self.reason}"
        return f"{self.field} {self.value!r}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of validating one Contact or DingTalkBot spec.

    Valid when ``problems`` is empty; then ``claims`` are the keys it claims
    and ``normalized`` the canonical values published in status.
    """

    problems: tuple[Problem, ...] = ()
    reason: Reason = Reason.ACCEPTED  # INVALID_SPEC or SECRET_NOT_FOUND when not valid
    claims: tuple[Claim, ...] = ()
    normalized: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        return "; ".join(p.message for p in self.problems)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A Contact or DingTalkBot as the ordering sees it.

    ``created`` is metadata.creationTimestamp; ties are broken by namespace,
    name, then kind. ``claimed_since`` holds, per claim, the time this object
    started claiming it and ``eligible_since`` the time it became valid and
    unique (both as ``tenure.order_time`` spells them, ``tenure.PENDING`` for
    "just now, not yet recorded"); a claim missing from ``claimed_since`` and
    a ``None`` ``eligible_since`` fall back to ``created``.
    """

    ref: ObjectRef
    created: str
    verdict: Verdict
    claimed_since: Mapping[Claim, str] = field(default_factory=dict)
    eligible_since: str | None = None

    @property
    def order_key(self) -> tuple[str, str, str]:
        return (self.created, self.ref.namespace, self.ref.name)

    def claim_key(self, claim: Claim) -> tuple[str, str, str, str, str]:
        """Where this object stands among the claimants of ``claim``: lower owns it."""
        since = self.claimed_since.get(claim, self.created)
        return (since, self.created, self.ref.namespace, self.ref.name, self.ref.kind)

    def eligible_key(self) -> tuple[str, str, str, str, str]:
        """Where this object stands in the quota order (when valid and unique)."""
        since = self.created if self.eligible_since is None else self.eligible_since
        return (since, self.created, self.ref.namespace, self.ref.name, self.ref.kind)
