"""Send one DingTalk robot message over HTTPS: one attempt, one SendOutcome.

Retries, queues and rate limits belong to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from alert_contacts.domain.dingtalk import DingTalkMessage
from alert_contacts.domain.outcome import SendOutcome


class DingTalkSender:
    def __init__(
        self, allowed_hosts: Iterable[str], extra_ca_file: Path | None, timeout: float
    ) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self.extra_ca_file = extra_ca_file
        self.timeout = timeout

    async def send(self, url: str, secret: str | None, message: DingTalkMessage) -> SendOutcome:
        raise NotImplementedError

    async def close(self) -> None:
        return None
