"""The delivery test harness itself: the fake DingTalk, the SMTP server and the real
Alertmanager behave as the delivery tests assume (no cluster, no operator).

If the fake DingTalk accepted a wrong signature, or Alertmanager did not send
the bearer token, the delivery tests would pass for the wrong reason.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.alertmanager import Alertmanager, alert, resolved
from tests.e2e.fakes import FakeDingTalk, LocalCA, SmtpServer, dingtalk_sign
from tests.e2e.harness import free_port, wait_until


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path)


@pytest.fixture
def dingtalk(ca: LocalCA) -> Iterator[FakeDingTalk]:
    with FakeDingTalk(ca) as fake:
        yield fake


def send(fake: FakeDingTalk, token: str, body: dict[str, Any], secret: str | None = None,
         timestamp_ms: int | None = None, sign: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST to the fake the way a DingTalk client does; (HTTP status, JSON answer)."""
    url = fake.url(token)
    if secret is not None or sign is not None:
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        signature = sign if sign is not None else dingtalk_sign(secret or "", ts)
        url += f"&timestamp={ts}&sign={urllib.parse.quote_plus(signature)}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, context=fake.ca.client_context(), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def markdown(text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": "t", "text": text},
            "at": {"atMobiles": ["13800138000"], "isAtAll": False}}


# ---------------------------------------------------------------- fake DingTalk


def test_fake_dingtalk_is_served_over_tls_for_its_ca_only(dingtalk: FakeDingTalk) -> None:
    token = dingtalk.add_robot()
    assert send(dingtalk, token, markdown("hi @13800138000")) == (
        200, {"errcode": 0, "errmsg": "ok"})
    (request,) = dingtalk.delivered(token)
    assert request.text == "hi @13800138000"
    assert request.at_mobiles == ["13800138000"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(dingtalk.url(token), data=b"{}", timeout=10,
                               context=ssl.create_default_context())


def test_fake_dingtalk_checks_the_signature_and_its_timestamp(dingtalk: FakeDingTalk) -> None:
    secret = "SEC" + "a" * 64
    token = dingtalk.add_robot(secret=secret)
    body = markdown("signed")
    assert send(dingtalk, token, body, secret=secret)[1]["errcode"] == 0
    assert send(dingtalk, token, body, secret="SEC" + "b" * 64)[1] == {
        "errcode": 310000, "errmsg": "sign not match"}
    assert send(dingtalk, token, body)[1]["errcode"] == 310000  # unsigned
    hour_ago = int(time.time() * 1000) - 3_600_000 - 5_000
    assert send(dingtalk, token, body, secret=secret, timestamp_ms=hour_ago)[1] == {
        "errcode": 310000, "errmsg": "invalid timestamp"}
    # A signature that is right except for URL encoding ('+' sent raw decodes to ' ').
    ts = int(time.time() * 1000)
    raw = dingtalk_sign(secret, ts)
    url = dingtalk.url(token) + f"&timestamp={ts}&sign={raw}"
    if "+" in raw:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, context=dingtalk.ca.client_context(),
                                    timeout=10) as r:
            assert json.loads(r.read())["errcode"] == 310000
    assert len(dingtalk.delivered(token)) == 1
    assert len(dingtalk.requests(token)) >= 4


def test_fake_dingtalk_answers_like_dingtalk(dingtalk: FakeDingTalk) -> None:
    assert send(dingtalk, "0" * 64, markdown("x"))[1] == {
        "errcode": 300001, "errmsg": "token is not exist"}
    keyworded = dingtalk.add_robot(keyword="[alert]")
    assert send(dingtalk, keyworded, markdown("no keyword"))[1]["errcode"] == 310000
    assert send(dingtalk, keyworded, markdown("[alert] fine"))[1]["errcode"] == 0

    token = dingtalk.add_robot()
    dingtalk.fail_next(token, 1, 310000)
    dingtalk.fail_next(token, 1, 130101)
    dingtalk.fail_next(token, 1, -1)
    dingtalk.fail_next(token, 2, 500)
    answers = [send(dingtalk, token, markdown(f"m{i}")) for i in range(6)]
    assert [(status, a.get("errcode")) for status, a in answers] == [
        (200, 310000), (200, 130101), (200, -1), (500, None), (500, None), (200, 0)]
    assert [r.delivered for r in dingtalk.requests(token)] == [False] * 5 + [True]


def test_fake_dingtalk_throttles_past_20_a_minute(ca: LocalCA) -> None:
    with FakeDingTalk(ca) as fake:
        token = fake.add_robot()
        codes = [send(fake, token, markdown(f"m{i}"))[1]["errcode"] for i in range(22)]
        assert codes == [0] * 20 + [130101, 130101]
        assert len(fake.delivered(token)) == 20
        assert fake.max_in_window(token) == 22


# ---------------------------------------------------------------- SMTP


def test_smtp_server_requires_starttls_and_auth(ca: LocalCA) -> None:
    with SmtpServer(ca) as server:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "alerts@example.com", "undisclosed-recipients:;", "[FIRING:1] Test")
        message.set_content("plain body")
        message.add_alternative("<p>html body</p>", subtype="html")

        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as plain:
            plain.ehlo()
            with pytest.raises(smtplib.SMTPException):
                plain.login(server.username, server.password)  # no AUTH before STARTTLS

        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.starttls(context=ca.client_context())
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(server.username, "wrong")
            client.login(server.username, server.password)
            client.send_message(message, to_addrs=["a@example.com", "b@example.com"])

        (mail,) = server.mails()
        assert server.mails(to="B@example.com") == [mail]
        assert mail.rcpt_tos == ("a@example.com", "b@example.com")
        assert (mail.login, mail.tls, mail.subject) == (server.username, True, "[FIRING:1] Test")
        assert mail.part("plain").strip() == "plain body"
        assert mail.part("html").strip() == "<p>html body</p>"
        assert server.failed_logins >= 1  # smtplib tries PLAIN, then LOGIN
        assert server.env()["ALERT_CONTACTS_SMTP_TLS"] == "starttls"


# ---------------------------------------------------------------- Alertmanager


class Receiver:
    """A plain webhook receiver: answers 500 to the first ``fail`` requests, then 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.requests: list[tuple[str, str | None, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((self.path, self.headers.get("Authorization"), body))
                status = 500 if len(receiver.requests) <= receiver.fail else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/alerts/ns-a/sre"


def test_alertmanager_posts_to_the_receiver_with_the_token_and_retries_5xx() -> None:
    receiver = Receiver(fail=1)
    receiver.thread.start()
    try:
        with Alertmanager(receiver_url=receiver.url, token="s3cret") as manager:
            firing = [alert("DiskFull", {"severity": "critical"}, {"summary": "disk full"})]
            manager.post_alerts(firing)
            # The first attempt got 500: Alertmanager retries it.
            wait_until("a retried notification", lambda: len(receiver.requests) >= 2, timeout=60)
            path, auth, body = receiver.requests[0]
            assert (path, auth) == ("/v1/alerts/ns-a/sre", "Bearer s3cret")
            assert body["version"] == "4"
            assert body["status"] == "firing"
            assert body["alerts"][0]["labels"]["alertname"] == "DiskFull"
            assert receiver.requests[1][2]["groupKey"] == body["groupKey"]
            requests, failed = manager.notification_counts()
            assert (requests, failed) >= (2, 1)

            count = len(receiver.requests)
            manager.post_alerts(resolved(firing))
            wait_until("the resolved notification",
                       lambda: any(b["status"] == "resolved" for _, _, b in receiver.requests),
                       timeout=60)
            assert len(receiver.requests) == count + 1
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
