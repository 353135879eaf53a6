"""Delivery decisions: a group's targets, retry timing, and the answer to Alertmanager.

Pure functions over plain data (the watched records, outcomes, clocks passed in):
``runtime/delivery.py`` does the sending and waiting, these decide.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from alert_contacts.domain.alerts import Notification
from alert_contacts.domain.groups import member_refs
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import ObjectRef
from alert_contacts.domain.validation import display_name

SecretIndex = Mapping[tuple[str, str], Mapping[str, str]]
OutcomeKind = Literal["ok", "transient", "permanent"]

# Alertmanager's default group_interval is 5 minutes: the in-request retries stay
# well under it, so a 5xx answer still leaves time for Alertmanager's own retry.
RETRY_BUDGET_SECONDS = 45.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 15.0
# DingTalk's 130101 "sending too fast" throttles a robot for a while: wait longer.
RATE_LIMITED_BACKOFF_SECONDS = 10.0


class Outcome(Protocol):
    """One attempt's result (``domain.outcome.SendOutcome`` has this shape)."""

    @property
    def kind(self) -> OutcomeKind: ...

    @property
    def reason(self) -> str: ...


AnOutcome = TypeVar("AnOutcome", bound=Outcome)


# ---------------------------------------------------------------- targets


def is_ready(status: Mapping[str, Any]) -> bool:
    """Whether the status the watch shows has Ready=True (the reconciler's verdict)."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in conditions)


@dataclass(frozen=True)
class BotTarget:
    """A Ready DingTalkBot: where to post and how to sign (never logged)."""

    ref: ObjectRef
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)

    @property
    def robot(self) -> str:
        """The robot's identity for its send queue: one per webhook, whoever names it."""
        return hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class MemberContact:
    ref: ObjectRef
    email: str | None = field(default=None, repr=False)
    mobile: str | None = field(default=None, repr=False)  # E.164
    system_notifications: bool = False


@dataclass(frozen=True)
class GroupTargets:
    """Who a notification for one group reaches: Ready bots and Ready member contacts."""

    ref: ObjectRef
    display_name: str
    bots: tuple[BotTarget, ...] = ()
    contacts: tuple[MemberContact, ...] = ()

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(sorted({c.email for c in self.contacts if c.email}))

    @property
    def mobiles(self) -> tuple[str, ...]:
        return tuple(sorted({c.mobile for c in self.contacts if c.mobile}))


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def bot_target(record: ObjectRecord, secrets: SecretIndex) -> BotTarget | None:
    """The bot's webhook URL and signing secret, inline or from its Secrets; None if
    the bot is not Ready or a value is not there (any more)."""
    if not is_ready(record.status):
        return None
    namespace = record.ref.namespace

    def secret_value(ref: Any) -> str | None:
        if not isinstance(ref, Mapping):
            return None
        data = secrets.get((namespace, str(ref.get("name", ""))))
        return None if data is None else _text(data.get(str(ref.get("key", ""))))

    webhook = record.spec.get("webhook")
    webhook = webhook if isinstance(webhook, Mapping) else {}
    url = _text(webhook.get("url")) or secret_value(webhook.get("secretRef"))
    if url is None:
        return None
    signing = record.spec.get("signingSecretRef")
    secret = secret_value(signing) if signing is not None else None
    if signing is not None and secret is None:
        return None  # a signed robot refuses unsigned messages: not deliverable now
    return BotTarget(record.ref, url, secret)


def member_contact(record: ObjectRecord) -> MemberContact | None:
    """A Ready contact's normalised email and mobile (as the reconciler published them)."""
    if not is_ready(record.status):
        return None
    normalized: Mapping[str, Any] = {}
    if record.verdict is not None and record.verdict.valid:
        normalized = record.verdict.normalized
    elif isinstance(record.status.get("normalized"), Mapping):
        normalized = record.status["normalized"]
    return MemberContact(
        record.ref,
        email=_text(normalized.get("email")),
        mobile=_text(normalized.get("mobile")),
        system_notifications=record.spec.get("systemNotifications") is True,
    )


def resolve_targets(
    group: ObjectRecord,
    contacts: Mapping[ObjectRef, ObjectRecord],
    bots: Mapping[ObjectRef, ObjectRecord],
    secrets: SecretIndex,
) -> GroupTargets:
    """The group's deliverable members; missing or not-Ready members are left out
    (the group's own status already reports them)."""
    found_bots: list[BotTarget] = []
    found_contacts: list[MemberContact] = []
    for ref in member_refs(group.ref.namespace, group.spec):
        if ref.kind == "DingTalkBot" and ref in bots:
            bot = bot_target(bots[ref], secrets)
            if bot is not None:
                found_bots.append(bot)
        elif ref.kind == "Contact" and ref in contacts:
            contact = member_contact(contacts[ref])
            if contact is not None:
                found_contacts.append(contact)
    display = display_name(group.spec, group.ref.name)
    return GroupTargets(group.ref, display, tuple(found_bots), tuple(found_contacts))


# ---------------------------------------------------------------- retries


def retry_delay(outcome: Outcome, attempt: int, elapsed: float,
                budget: float = RETRY_BUDGET_SECONDS) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None: do not retry.

    Only transient outcomes are retried, with exponential backoff (1, 2, 4 ...
    capped at 15 s; 10 s at least after DingTalk's rate limit), and only while
    the retry would start within ``budget`` seconds of the first attempt.
    """
    if outcome.kind != "transient":
        return None
    delay: float = min(BACKOFF_FIRST_SECONDS * 2.0 ** max(attempt - 1, 0), BACKOFF_MAX_SECONDS)
    if outcome.reason == "RateLimited":
        delay = max(delay, RATE_LIMITED_BACKOFF_SECONDS)
    if elapsed + delay > budget:
        return None
    return delay


# ---------------------------------------------------------------- answer


TargetResult = Literal["delivered", "duplicate", "permanent", "transient", "skipped"]


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to Alertmanager: status code and a one-line summary (no personal data)."""

    status: int
    summary: str


def answer(results: Mapping[str, TargetResult]) -> Answer:
    """2xx once every target was delivered (or already had it) or failed for good;
    503 while a transient failure remains, so Alertmanager sends it again (and
    the targets that already got it are skipped by dedup then)."""
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result] = counts.get(result, 0) + 1
    summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "no targets"
    pending = sorted(t for t, r in results.items() if r == "transient")
    if pending:
        return Answer(503, f"{summary}; not yet delivered to {', '.join(pending)}: retry")
    return Answer(200, summary)


def namespace_token(master: str, namespace: str) -> str:
    """The receiver token for one namespace's groups: HMAC-SHA256(master, namespace) in
    hex. A team gets its own and can post to no other namespace's groups; the master
    token (the platform's own Alertmanager) opens every namespace. The same as
    ``printf %s NAMESPACE | openssl dgst -sha256 -hmac MASTER``."""
    return hmac.new(master.encode("utf-8"), namespace.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def worst(outcomes: Sequence[AnOutcome]) -> AnOutcome:
    """A target's outcome from its messages': a permanent failure, else a transient
    one, else the last success."""
    for kind in ("permanent", "transient"):
        for outcome in outcomes:
            if outcome.kind == kind:
                return outcome
    return outcomes[-1]


def test_notification(ref: ObjectRef, now: datetime) -> Notification:
    """A clearly marked, resolved-free notification naming the object it tests, firing
    since ``now``."""
    started = now.isoformat()
    return Notification.model_validate({
        "version": "4", "status": "firing", "receiver": "alert-contacts-test",
        "groupKey": f"test:{ref}", "groupLabels": {"alertname": "AlertContactsTest"},
        "commonLabels": {"alertname": "AlertContactsTest", "severity": "none"},
        "commonAnnotations": {"summary": f"Test message for {ref}: delivery works"},
        "externalURL": "", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing", "labels": {"alertname": "AlertContactsTest", "severity": "none"},
            "annotations": {"summary": f"Test message for {ref}: delivery works",
                            "description": "Sent on request (alerting.contacts.dev/send-test); "
                                           "no action needed."},
            "startsAt": started, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
            "fingerprint": "test",
        }],
    })
