"""Send one email over SMTP with aiosmtplib: one attempt, one SendOutcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from alert_contacts.domain.outcome import SendOutcome

TlsMode = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    tls: TlsMode = "starttls"
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings | None:
        raise NotImplementedError


class SmtpSender:
    def __init__(self, settings: SmtpSettings, extra_ca_file: Path | None) -> None:
        self.settings = settings
        self.extra_ca_file = extra_ca_file

    async def send(self, message: EmailMessage) -> SendOutcome:
        raise NotImplementedError
