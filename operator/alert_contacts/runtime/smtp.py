"""Send one email over SMTP with aiosmtplib: one attempt, one SendOutcome.

aiosmtplib's own timeout applies to each socket operation, so a server that
answers slowly but steadily could hold a send for minutes; the whole attempt
runs under one ``asyncio.timeout`` instead. STARTTLS mode is *required* TLS:
a server that does not offer STARTTLS fails the send instead of receiving
the credentials and the message in clear text.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Literal

import aiosmtplib
from email_validator import EmailNotValidError, validate_email

from alert_contacts.domain import outcome as reasons
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.validation import scrub_personal_data

from .tlsclient import client_ssl_context, tls_failure

TlsMode = Literal["starttls", "tls", "none"]
TLS_MODES: tuple[TlsMode, ...] = ("starttls", "tls", "none")
DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_TIMEOUT = 30.0
ENV = "ALERT_CONTACTS_SMTP"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    tls: TlsMode = "starttls"
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings | None:
        """Read ``ALERT_CONTACTS_SMTP_*``; None when no host is set (email is off).

        ValueError names the variable and the problem (never the password).
        """
        host = env.get(f"{ENV}_HOST", "").strip()
        if not host:
            return None
        tls_text = env.get(f"{ENV}_TLS", "").strip().lower() or "starttls"
        if tls_text not in TLS_MODES:
            raise ValueError(
                f"{ENV}_TLS {tls_text!r}: must be starttls (STARTTLS required), tls (implicit"
                " TLS, usually port 465) or none"
            )
        tls: TlsMode = next(mode for mode in TLS_MODES if mode == tls_text)
        port_text = env.get(f"{ENV}_PORT", "").strip()
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{ENV}_PORT {port_text!r}: must be a number from 1 to 65535")
            port = int(port_text)
        else:
            port = DEFAULT_PORTS[tls]
        username = env.get(f"{ENV}_USERNAME", "").strip() or None
        password = env.get(f"{ENV}_PASSWORD", "") or None
        if (username is None) != (password is None):
            missing = f"{ENV}_PASSWORD" if password is None else f"{ENV}_USERNAME"
            raise ValueError(f"{missing}: is required when the other SMTP credential is set")
        if username is not None and tls == "none":
            raise ValueError(
                f"{ENV}_TLS 'none': would send the SMTP password unencrypted;"
                " use starttls or tls with a username and password"
            )
        sender_text = env.get(f"{ENV}_FROM", "").strip()
        if not sender_text:
            raise ValueError(f"{ENV}_FROM: is required when {ENV}_HOST is set (the From address)")
        _, address = parseaddr(sender_text)
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValueError(f"{ENV}_FROM {sender_text!r}: not an email address ({exc})") from None
        timeout_text = env.get(f"{ENV}_TIMEOUT", "").strip()
        timeout = DEFAULT_TIMEOUT
        if timeout_text:
            try:
                timeout = float(timeout_text)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 600:
                raise ValueError(f"{ENV}_TIMEOUT {timeout_text!r}: must be seconds, 0 to 600")
        return cls(host, port, username, password, sender_text, tls, timeout)


class SmtpSender:
    """One connection per send: alert mail is rare enough, and no idle session can go stale."""

    def __init__(self, settings: SmtpSettings, extra_ca_file: Path | None) -> None:
        self.settings = settings
        self._ssl = client_ssl_context(extra_ca_file)

    async def send(self, message: EmailMessage,
                   recipients: Sequence[str] | None = None) -> SendOutcome:
        """Send ``message`` to ``recipients`` (default: its To/Cc/Bcc); the result never
        lists addresses in its message (``retry_to`` holds those refused for now)."""
        s = self.settings
        headers = [*message.get_all("To", []), *message.get_all("Cc", []),
                   *message.get_all("Bcc", [])]
        count = (len(recipients) if recipients is not None else
                 sum(1 for _, address in getaddresses(headers) if address))
        where = f"{s.host}:{s.port}"
        try:
            async with asyncio.timeout(s.timeout):
                refused, _ = await aiosmtplib.send(
                    message,
                    recipients=list(recipients) if recipients is not None else None,
                    hostname=s.host,
                    port=s.port,
                    username=s.username,
                    password=s.password,
                    use_tls=s.tls == "tls",
                    start_tls=s.tls == "starttls",
                    tls_context=self._ssl if s.tls != "none" else None,
                    timeout=s.timeout,
                )
        except TimeoutError:
            return SendOutcome(
                "transient", reasons.TIMEOUT, None, f"{where} did not finish in {s.timeout:g}s"
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            later = tuple(r.recipient for r in exc.recipients if _by_code(r.code) == "transient")
            return SendOutcome(
                "transient" if later else "permanent",
                reasons.SMTP_REJECTED,
                codes[0] if codes else None,
                f"{where} refused all {len(exc.recipients)} recipient(s)"
                f" (codes {', '.join(map(str, codes))})",
                retry_to=later,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return SendOutcome(
                "permanent",
                reasons.SMTP_AUTH_FAILED,
                exc.code,
                f"{where} refused the SMTP username or password (code {exc.code})",
            )
        except aiosmtplib.SMTPResponseException as exc:  # SMTPSenderRefused among them
            if isinstance(exc, aiosmtplib.SMTPSenderRefused):
                what = f"refused the From address (code {exc.code})"
            else:
                what = f"answered {exc.code}: {_short(exc.message)}"
            return SendOutcome(_by_code(exc.code), reasons.SMTP_REJECTED, exc.code,
                               f"{where} {what}")
        except aiosmtplib.SMTPConnectError as exc:
            # aiosmtplib wraps TLS failures of the connection (implicit TLS) in this one.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLError):
                why = f"TLS with {where} failed: {tls_failure(cause)}"
                return SendOutcome("transient", reasons.TLS_ERROR, None, why)
            why = f"cannot connect to {where}: {_short(str(exc))}"
            return SendOutcome("transient", reasons.NETWORK_ERROR, None, why)
        except aiosmtplib.SMTPNotSupported as exc:
            return SendOutcome(
                "permanent", reasons.SMTP_REJECTED, None, f"{where}: {_short(str(exc))}"
            )
        except aiosmtplib.SMTPException as exc:
            if "STARTTLS" in str(exc).upper():
                return SendOutcome(
                    "permanent",
                    reasons.STARTTLS_UNAVAILABLE,
                    None,
                    f"{where} does not offer STARTTLS, which {ENV}_TLS=starttls requires"
                    " (use tls for implicit TLS, or fix the server)",
                )
            return SendOutcome(
                "transient",
                reasons.SMTP_UNAVAILABLE,
                None,
                f"{where}: {exc.__class__.__name__}: {_short(str(exc))}",
            )
        except ssl.SSLError as exc:
            return SendOutcome(
                "transient", reasons.TLS_ERROR, None, f"TLS with {where} failed: {tls_failure(exc)}"
            )
        except OSError as exc:
            why = f"cannot reach {where}: {exc.__class__.__name__}"
            return SendOutcome("transient", reasons.NETWORK_ERROR, None, why)
        later = tuple(address for address, (code, _) in refused.items()
                      if _by_code(code) == "transient")
        if later:
            # Refused for now (greylisting, a full mailbox): only those are sent it again.
            codes = sorted({code for code, _ in refused.values()})
            return SendOutcome(
                "transient",
                reasons.SMTP_REJECTED,
                codes[0],
                f"accepted for {count - len(refused)} of {count} recipient(s);"
                f" {len(later)} refused for now, {len(refused) - len(later)} for good"
                f" (codes {', '.join(map(str, codes))})",
                retry_to=later,
            )
        if refused:
            # Some recipients were refused for good, the rest accepted: delivered, and say
            # how many not.
            return SendOutcome(
                "ok",
                reasons.DELIVERED,
                250,
                f"accepted for {count - len(refused)} of {count} recipient(s);"
                f" {len(refused)} refused",
            )
        return SendOutcome("ok", reasons.DELIVERED, 250, f"accepted for {count} recipient(s)")


def _by_code(code: int) -> Literal["transient", "permanent"]:
    return "transient" if 400 <= code < 500 else "permanent"


def _short(text: str) -> str:
    # Server replies can quote an address; keep them short and scrub personal data.
    text = scrub_personal_data(" ".join(text.split()))
    return text if len(text) <= 200 else text[:199] + "…"
