"""System notices: the operator's own messages to Contacts with ``systemNotifications``.

Which notices are due is a pure function of the quota order as the decision
engine keeps it (how many objects hold a slot, which wait beyond it), of the
bots whose last delivery failed for good, and of when each was last sent: each
notice at most once per condition per hour.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from alert_contacts.domain.dingtalk import DingTalkMessage
from alert_contacts.domain.mail import RenderedEmail, build_message
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import ObjectRef

QUOTA_WARNING_RATIO = 0.9
NOTICE_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Notice:
    """One notice; ``key`` names the condition it is about (the throttle's key)."""

    key: str
    subject: str
    text: str


def failed_bots(bots: Iterable[ObjectRecord]) -> list[tuple[ObjectRef, str]]:
    """Bots whose last delivery failed permanently, with the reason."""
    found = []
    for bot in bots:
        delivery = bot.status.get("delivery")
        if isinstance(delivery, Mapping) and delivery.get("result") == "Failed":
            found.append((bot.ref, str(delivery.get("reason") or "Failed")))
    return sorted(found)


def current_notices(used: int, quota: int, held: Iterable[ObjectRef],
                    failed: Iterable[tuple[ObjectRef, str]]) -> list[Notice]:
    """Every condition worth a notice now (the throttle decides which are sent)."""
    notices: list[Notice] = []
    if quota > 0 and used >= QUOTA_WARNING_RATIO * quota:
        percent = round(100 * used / quota)
        notices.append(Notice(
            "quota",
            f"[alert-contacts] contact quota {percent}% used ({used}/{quota})",
            f"{used} of the {quota} Contacts and DingTalkBots the operator accepts "
            f"cluster-wide are in use ({percent}%). New ones beyond {quota} are held "
            "(QuotaExceeded) until others are deleted or the quota (ALERT_CONTACTS_QUOTA) "
            "is raised.",
        ))
    for ref in held:
        notices.append(Notice(
            f"held:{ref.kind}/{ref.namespace}/{ref.name}",
            f"[alert-contacts] {ref} is held by the quota",
            f"{ref} is not Ready (QuotaExceeded): the cluster-wide quota of {quota} "
            "Contacts and DingTalkBots is full, so it receives no alerts.",
        ))
    for ref, reason in failed:
        notices.append(Notice(
            f"bot-failed:{ref.namespace}/{ref.name}:{reason}",
            f"[alert-contacts] {ref} failed: {reason}",
            f"Messages to {ref} fail permanently ({reason}); alerts do not reach it until "
            f"its configuration is fixed. See `kubectl describe dingtalkbot -n {ref.namespace} "
            f"{ref.name}` (status.delivery and the Delivering condition).",
        ))
    return notices


@dataclass
class NoticeThrottle:
    """When each notice was last sent (by key); ``due`` picks and records what may go."""

    interval: float = NOTICE_INTERVAL_SECONDS
    sent: dict[str, float] = field(default_factory=dict)

    def due(self, notices: Iterable[Notice], now: float) -> list[Notice]:
        # Sent longer ago than the interval is as good as never: forgotten, so the keys of
        # deleted objects' notices do not pile up.
        self.sent = {k: t for k, t in self.sent.items() if now - t < self.interval}
        ready = [n for n in notices
                 if (last := self.sent.get(n.key)) is None or now - last >= self.interval]
        for notice in ready:
            self.sent[notice.key] = now
        return ready


def recipients(contacts: Iterable[ObjectRecord], groups: Iterable[ObjectRecord]
               ) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """(Contacts with systemNotifications, bots of the groups that contain any of them)."""
    wanted = sorted(c.ref for c in contacts if c.spec.get("systemNotifications") is True)
    names = {(r.namespace, r.name) for r in wanted}
    bots: set[ObjectRef] = set()
    for group in groups:
        members = group.spec.get("contacts") or []
        if any((group.ref.namespace, m) in names for m in members):
            for bot in group.spec.get("dingTalkBots") or []:
                bots.add(ObjectRef("DingTalkBot", group.ref.namespace, str(bot)))
    return wanted, sorted(bots)


def notice_message(notice: Notice) -> DingTalkMessage:
    return DingTalkMessage(title=notice.subject, text=f"### {notice.subject}\n\n{notice.text}")


def notice_email(notice: Notice, sender: str, to: Sequence[str], bcc: bool) -> EmailMessage:
    text = f"{notice.text}\n\n-- alert-contacts-operator\n"
    rendered = RenderedEmail(notice.subject, text, f"<p>{html.escape(notice.text)}</p>")
    return build_message(sender, to, rendered, bcc=bcc)
