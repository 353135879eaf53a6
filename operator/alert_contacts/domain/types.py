"""Plain data shared by the validation and decision functions."""

from __future__ import annotations

import enum
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


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one namespaced object of ours."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


ClaimKind = Literal["mobile", "email", "webhook"]


@dataclass(frozen=True, order=True)
class Claim:
    """A key that at most one object cluster-wide may own (value is normalised)."""

    kind: ClaimKind
    value: str


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Candidate:
    """A Contact or DingTalkBot as the ordering sees it.

    ``created`` is metadata.creationTimestamp (RFC 3339, second precision, as
    the API server writes it); ties are broken by namespace then name.
    """

    ref: ObjectRef
    created: str
    verdict: Verdict

    @property
    def order_key(self) -> tuple[str, str, str]:
        return (self.created, self.ref.namespace, self.ref.name)
