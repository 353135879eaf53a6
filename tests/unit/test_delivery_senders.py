"""The DingTalk and SMTP senders against small real servers on loopback.

DingTalk: an aiohttp HTTPS server with a certificate from a throwaway CA,
verifying the signature like DingTalk does. SMTP: aiosmtpd with STARTTLS,
implicit TLS and AUTH.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from alert_contacts.domain import outcome as reasons
from alert_contacts.domain.dingtalk import DingTalkMessage
from alert_contacts.domain.mail import build_message, render_email
from alert_contacts.runtime.dingtalk import DingTalkSender
from alert_contacts.runtime.smtp import SmtpSender, SmtpSettings

from .delivery_data import SHANGHAI, notification
from .tls_certs import Pki, make_pki

TOKEN = "0123456789abcdef" * 4
SECRET = "SEC" + "0123456789abcdef" * 4
MESSAGE = DingTalkMessage("[FIRING:1] Test", "### hello @13800138000", ("13800138000",))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- DingTalk


@dataclass
class FakeDingTalk:
    """Answers like DingTalk: errcode in a 200, signature and timestamp checked."""

    secret: str | None = None
    answer: Callable[[], web.StreamResponse] | None = None
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        self.received.append(json.loads(await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer is not None:
            return self.answer()
        if request.query.get("access_token") != TOKEN:
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
        if self.secret is not None:
            stamp = request.query.get("timestamp", "")
            expected = base64.b64encode(
                hmac.new(
                    self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256
                ).digest()
            ).decode()
            if not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > 3_600_000:
                return web.json_response({"errcode": 310000, "errmsg": "invalid timestamp"})
            if request.query.get("sign") != expected:
                return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@asynccontextmanager
async def dingtalk_server(pki: Pki, fake: FakeDingTalk) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/robot/send", fake.handle)
    app.router.add_post("/elsewhere", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=pki.server_context())
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


def _url(port: int) -> str:
    return f"https://localhost:{port}/robot/send?access_token={TOKEN}"


async def _send_once(
    pki: Pki,
    fake: FakeDingTalk,
    *,
    secret: str | None = None,
    trust: bool = True,
    hosts: Callable[[int], tuple[str, ...]] = lambda port: (f"localhost:{port}",),
    limit: float = 5.0,
) -> reasons.SendOutcome:
    async with dingtalk_server(pki, fake) as port:
        sender = DingTalkSender(hosts(port), pki.ca_file if trust else None, limit)
        try:
            return await sender.send(_url(port), secret, MESSAGE)
        finally:
            await sender.close()


def test_a_signed_message_is_delivered_over_tls_with_the_extra_ca(pki: Pki) -> None:
    fake = FakeDingTalk(secret=SECRET)
    outcome = asyncio.run(_send_once(pki, fake, secret=SECRET))
    assert (outcome.kind, outcome.reason, outcome.code) == ("ok", "Delivered", 0)
    assert fake.received == [MESSAGE.body()]
    assert set(fake.queries[0]) == {"access_token", "timestamp", "sign"}


def test_a_wrong_secret_is_a_permanent_signature_rejection(pki: Pki) -> None:
    fake = FakeDingTalk(secret=SECRET)
    outcome = asyncio.run(_send_once(pki, fake, secret="SEC" + "f" * 64))
    assert (outcome.kind, outcome.reason) == ("permanent", "SignatureRejected")
    assert outcome.code == 310000
    assert TOKEN not in outcome.message and "SECf" not in outcome.message


def test_an_unsigned_message_goes_without_sign_parameters(pki: Pki) -> None:
    fake = FakeDingTalk()
    outcome = asyncio.run(_send_once(pki, fake))
    assert outcome.ok
    assert set(fake.queries[0]) == {"access_token"}


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        (lambda: web.json_response({"errcode": 130101, "errmsg": "send too fast"}),
         "transient", "RateLimited"),
        (lambda: web.json_response({"errcode": -1, "errmsg": "系统繁忙"}),
         "transient", "ServerBusy"),
        (lambda: web.Response(status=500, text="oops"), "transient", "ServerError"),
        (lambda: web.json_response({"errcode": 310000, "errmsg": "keywords not in content"}),
         "permanent", "KeywordMissing"),
        (lambda: web.Response(status=302, headers={"Location": "/elsewhere"}),
         "permanent", "HttpError"),
    ],
)
def test_answers_become_outcomes(
    pki: Pki, answer: Callable[[], web.StreamResponse], kind: str, reason: str
) -> None:
    fake = FakeDingTalk(answer=answer)
    outcome = asyncio.run(_send_once(pki, fake))
    assert (outcome.kind, outcome.reason) == (kind, reason)
    assert len(fake.received) == 1  # one attempt, and a redirect is not followed


def test_a_server_the_system_does_not_trust_is_a_tls_error(pki: Pki) -> None:
    fake = FakeDingTalk()
    outcome = asyncio.run(_send_once(pki, fake, trust=False))
    assert (outcome.kind, outcome.reason) == ("transient", "TlsError")
    assert fake.received == []
    assert TOKEN not in outcome.message


@pytest.mark.parametrize(
    "hosts",
    [
        lambda port: ("oapi.dingtalk.com",),  # the host is not allowed
        lambda port: ("localhost",),  # allowed, but only on 443
        lambda port: (f"localhost:{port + 1}",),  # allowed on another port
    ],
)
def test_a_host_or_port_not_allowed_is_refused_before_connecting(
    pki: Pki, hosts: Callable[[int], tuple[str, ...]]
) -> None:
    fake = FakeDingTalk()
    outcome = asyncio.run(_send_once(pki, fake, hosts=hosts))
    assert (outcome.kind, outcome.reason) == ("permanent", "HostNotAllowed")
    assert fake.received == []
    assert TOKEN not in outcome.message


def test_plain_http_is_refused() -> None:
    async def run() -> reasons.SendOutcome:
        sender = DingTalkSender(("localhost:8080",), None, 1.0)
        try:
            return await sender.send(f"http://localhost:8080/robot/send?access_token={TOKEN}",
                                     None, MESSAGE)
        finally:
            await sender.close()

    outcome = asyncio.run(run())
    assert outcome.permanent and "https" in outcome.message


def test_a_slow_server_is_a_timeout_within_the_limit(pki: Pki) -> None:
    fake = FakeDingTalk(delay=3.0)

    async def run() -> tuple[reasons.SendOutcome, float]:
        async with dingtalk_server(pki, fake) as port:
            sender = DingTalkSender((f"localhost:{port}",), pki.ca_file, 0.5)
            started = time.monotonic()
            try:
                return await sender.send(_url(port), None, MESSAGE), time.monotonic() - started
            finally:
                await sender.close()

    outcome, elapsed = asyncio.run(run())
    assert (outcome.kind, outcome.reason) == ("transient", "Timeout")
    assert elapsed < 2.0


def test_nobody_listening_is_a_network_error_without_the_token() -> None:
    port = _free_port()

    async def run() -> reasons.SendOutcome:
        sender = DingTalkSender((f"localhost:{port}",), None, 2.0)
        try:
            return await sender.send(_url(port), SECRET, MESSAGE)
        finally:
            await sender.close()

    outcome = asyncio.run(run())
    assert (outcome.kind, outcome.reason) == ("transient", "NetworkError")
    assert TOKEN not in outcome.message and SECRET not in outcome.message


def test_a_bad_allowed_host_entry_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="port"):
        DingTalkSender(("localhost:http",), None, 1.0)


# ---------------------------------------------------------------- SMTP


@dataclass
class Inbox:
    envelopes: list[Envelope] = field(default_factory=list)
    refuse_rcpt: bool = False
    data_delay: float = 0.0
    greylisted: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_rcpt:
            return "550 5.1.1 <" + address + ">: Recipient address rejected"
        if address in self.greylisted:
            return "450 4.2.0 <" + address + ">: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        self.envelopes.append(envelope)
        return "250 Message accepted"


def _authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield None


class _Smtpd:
    def __init__(self, pki: Pki, inbox: Inbox, mode: str) -> None:
        # aiosmtpd counts only STARTTLS as TLS for AUTH; implicit TLS is TLS from the start.
        kwargs: dict[str, Any] = {
            "authenticator": _authenticator,
            "auth_require_tls": mode == "starttls",
        }
        if mode == "starttls":
            kwargs.update(tls_context=pki.server_context(), require_starttls=True)
        if mode == "tls":
            kwargs.update(ssl_context=pki.server_context())
        self.port = _free_port()
        self.controller = Controller(
            inbox, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **kwargs
        )

    def __enter__(self) -> int:
        self.controller.start()
        return self.port

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def _settings(port: int, tls: str, **changes: str) -> SmtpSettings:
    env = {
        "ALERT_CONTACTS_SMTP_HOST": "localhost",
        "ALERT_CONTACTS_SMTP_PORT": str(port),
        "ALERT_CONTACTS_SMTP_TLS": tls,
        "ALERT_CONTACTS_SMTP_FROM": "Alerts <alerts@example.com>",
        "ALERT_CONTACTS_SMTP_TIMEOUT": "3",
    }
    if tls != "none":
        env |= {"ALERT_CONTACTS_SMTP_USERNAME": "alerts", "ALERT_CONTACTS_SMTP_PASSWORD": "s3cret"}
    settings = SmtpSettings.from_env(env | changes)
    assert settings is not None
    return settings


def _mail() -> Any:
    rendered = render_email(notification(), SHANGHAI)
    return build_message("Alerts <alerts@example.com>", ["alice@example.com", "bob@example.org"],
                         rendered)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_mail_is_delivered_over_tls_with_auth_to_bcc_recipients(pki: Pki, mode: str) -> None:
    inbox = Inbox()
    with _Smtpd(pki, inbox, mode) as port:
        outcome = asyncio.run(SmtpSender(_settings(port, mode), pki.ca_file).send(_mail()))
    assert (outcome.kind, outcome.reason) == ("ok", "Delivered")
    assert outcome.message == "accepted for 2 recipient(s)"
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["alice@example.com", "bob@example.org"]
    assert envelope.mail_from == "alerts@example.com"
    raw = envelope.original_content or b""
    received = message_from_bytes(raw, policy=policy.default)
    assert received["Bcc"] is None
    assert received["To"] == "undisclosed-recipients:;"
    assert b"alice@example.com" not in raw and b"bob@example.org" not in raw
    assert received.get_content_type() == "multipart/alternative"


def test_starttls_required_fails_when_the_server_does_not_offer_it(pki: Pki) -> None:
    inbox = Inbox()
    with _Smtpd(pki, inbox, "none") as port:
        settings = _settings(port, "starttls")
        outcome = asyncio.run(SmtpSender(settings, pki.ca_file).send(_mail()))
    assert (outcome.kind, outcome.reason) == ("permanent", "StartTlsUnavailable")
    assert inbox.envelopes == []


def test_a_wrong_password_is_a_permanent_auth_failure(pki: Pki) -> None:
    inbox = Inbox()
    with _Smtpd(pki, inbox, "starttls") as port:
        settings = _settings(port, "starttls", ALERT_CONTACTS_SMTP_PASSWORD="wrong")
        outcome = asyncio.run(SmtpSender(settings, pki.ca_file).send(_mail()))
    assert (outcome.kind, outcome.reason) == ("permanent", "SmtpAuthFailed")
    assert outcome.code == 535
    assert "wrong" not in outcome.message
    assert inbox.envelopes == []


def test_refused_recipients_are_counted_not_listed(pki: Pki) -> None:
    inbox = Inbox(refuse_rcpt=True)
    with _Smtpd(pki, inbox, "starttls") as port:
        outcome = asyncio.run(SmtpSender(_settings(port, "starttls"), pki.ca_file).send(_mail()))
    assert (outcome.kind, outcome.reason, outcome.code) == ("permanent", "SmtpRejected", 550)
    assert "2 recipient(s)" in outcome.message
    assert "alice" not in outcome.message and "bob" not in outcome.message


def test_an_untrusted_server_certificate_is_a_tls_error(pki: Pki) -> None:
    inbox = Inbox()
    with _Smtpd(pki, inbox, "tls") as port:
        outcome = asyncio.run(SmtpSender(_settings(port, "tls"), None).send(_mail()))
    assert (outcome.kind, outcome.reason) == ("transient", "TlsError")
    assert inbox.envelopes == []


def test_the_whole_send_has_one_total_timeout(pki: Pki) -> None:
    inbox = Inbox(data_delay=8.0)
    with _Smtpd(pki, inbox, "starttls") as port:
        settings = _settings(port, "starttls", ALERT_CONTACTS_SMTP_TIMEOUT="1")
        started = time.monotonic()
        outcome = asyncio.run(SmtpSender(settings, pki.ca_file).send(_mail()))
        elapsed = time.monotonic() - started
    assert (outcome.kind, outcome.reason) == ("transient", "Timeout")
    assert elapsed < 4.0


def test_nobody_listening_is_transient() -> None:
    settings = _settings(_free_port(), "starttls")
    outcome = asyncio.run(SmtpSender(settings, None).send(_mail()))
    assert outcome.transient
    assert outcome.reason in ("NetworkError", "SmtpUnavailable")


def test_recipients_refused_for_now_are_transient_and_retried_alone(pki: Pki) -> None:
    inbox = Inbox(greylisted={"bob@example.org"})
    with _Smtpd(pki, inbox, "starttls") as port:
        sender = SmtpSender(_settings(port, "starttls"), pki.ca_file)
        outcome = asyncio.run(sender.send(_mail()))
        assert (outcome.kind, outcome.code) == ("transient", 450)
        assert outcome.retry_to == ("bob@example.org",)
        assert "bob" not in outcome.message and "bob" not in repr(outcome)
        inbox.greylisted.clear()
        again = asyncio.run(sender.send(_mail(), outcome.retry_to))
    assert again.kind == "ok"
    assert [e.rcpt_tos for e in inbox.envelopes] == [["alice@example.com"], ["bob@example.org"]]
