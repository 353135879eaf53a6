"""Alertmanager notifications as DingTalk robot messages, and DingTalk's answers.

Everything here is pure: rendering markdown (with @-mentions, times in the
configured zone, source and silence links), splitting at DingTalk's size limit
between alerts, merging queued messages, signing webhook URLs and reading the
robot API's answers into a SendOutcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from .alerts import Notification
from .outcome import SendOutcome

MAX_MESSAGE_BYTES = 20_000
"""DingTalk refuses a robot message over 20,000 bytes; counted on the JSON body."""


@dataclass(frozen=True)
class DingTalkMessage:
    """One markdown robot message; ``at_mobiles`` in DingTalk's form (``dingtalk_mobile``)."""

    title: str
    text: str
    at_mobiles: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {"title": self.title, "text": self.text},
            "at": {"atMobiles": list(self.at_mobiles), "isAtAll": False},
        }


@dataclass(frozen=True)
class RenderResult:
    messages: list[DingTalkMessage] = field(default_factory=list)
    template_error: str | None = None


def dingtalk_mobile(e164: str) -> str:
    """National digits for +86, ``+<cc>-<national>`` otherwise."""
    raise NotImplementedError


def render_dingtalk(
    notification: Notification,
    mentions: Sequence[str],
    tz: tzinfo,
    *,
    test: bool = False,
    template: str | None = None,
) -> RenderResult:
    """The notification as one or more markdown messages of at most MAX_MESSAGE_BYTES."""
    raise NotImplementedError


def merge_messages(messages: Sequence[DingTalkMessage]) -> list[DingTalkMessage]:
    """Consecutive queued messages for one bot joined, each result within the size limit."""
    raise NotImplementedError


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with DingTalk's ``timestamp`` and ``sign`` query parameters."""
    raise NotImplementedError


def classify_response(http_status: int | None, body: bytes | None) -> SendOutcome:
    """What DingTalk's answer (None: no answer at all) means for this attempt."""
    raise NotImplementedError
