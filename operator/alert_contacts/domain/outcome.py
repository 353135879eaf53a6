"""The outcome of one delivery attempt, shared by the DingTalk and SMTP senders.

``kind`` decides what happens next: ``ok`` is done, ``transient`` is worth
another attempt (with backoff), ``permanent`` is not and is reported on the
object. ``reason`` is a stable CamelCase word for conditions and metrics;
``message`` is for humans and never holds a token or an address list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OutcomeKind = Literal["ok", "transient", "permanent"]

# Reasons (part of the status API: tools and alerts match on them).
DELIVERED = "Delivered"
SIGNATURE_REJECTED = "SignatureRejected"
KEYWORD_MISSING = "KeywordMissing"
IP_NOT_ALLOWED = "IpNotAllowed"
SECURITY_CHECK_FAILED = "SecurityCheckFailed"
TOKEN_NOT_FOUND = "TokenNotFound"
BOT_DISABLED = "BotDisabled"
BOT_NOT_FOUND = "BotNotFound"
GROUP_DISSOLVED = "GroupDissolved"
CONTENT_REJECTED = "ContentRejected"
MESSAGE_REJECTED = "MessageRejected"
RATE_LIMITED = "RateLimited"
SERVER_BUSY = "ServerBusy"
SERVER_ERROR = "ServerError"
HTTP_ERROR = "HttpError"
INVALID_RESPONSE = "InvalidResponse"
NETWORK_ERROR = "NetworkError"
TLS_ERROR = "TlsError"
TIMEOUT = "Timeout"
HOST_NOT_ALLOWED = "HostNotAllowed"
INVALID_WEBHOOK = "InvalidWebhook"
SMTP_REJECTED = "SmtpRejected"
SMTP_AUTH_FAILED = "SmtpAuthFailed"
SMTP_UNAVAILABLE = "SmtpUnavailable"
STARTTLS_UNAVAILABLE = "StartTlsUnavailable"


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt to send one message came to."""

    kind: OutcomeKind
    reason: str
    code: int | None = None
    """DingTalk errcode, SMTP reply code or HTTP status, when there was one."""
    message: str = ""
    retry_to: tuple[str, ...] = field(default=(), repr=False)
    """Email: the recipients refused for now (SMTP 4xx), the only ones to send again.
    Personal data: never logged."""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def transient(self) -> bool:
        return self.kind == "transient"

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"

    def __str__(self) -> str:
        code = f" (code {self.code})" if self.code is not None else ""
        text = f": {self.message}" if self.message else ""
        return f"{self.kind} {self.reason}{code}{text}"


def delivered(code: int | None = None, message: str = "") -> SendOutcome:
    return SendOutcome("ok", DELIVERED, code, message)
