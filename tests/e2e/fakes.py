"""Stand-ins for the outside world that the operator delivers to, run by the tests.

- ``FakeDingTalk``: a DingTalk-compatible robot endpoint over HTTPS on loopback,
  with its own CA. It checks what DingTalk checks (the signature and its 1-hour
  timestamp window, the keyword, 20 messages a minute per robot), answers errors
  the way DingTalk does (inside HTTP 200, with ``errcode``), records every
  request with its arrival time, and can be told to fail the next N requests of
  a robot with a given answer.
- ``SmtpServer``: a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH,
  recording every accepted message.

The operator reaches both through configuration a real user may also need: the
CA in ``ALERT_CONTACTS_EXTRA_CA_FILE`` and ``localhost:PORT`` in
``ALERT_CONTACTS_DINGTALK_HOSTS``; the SMTP server through ``ALERT_CONTACTS_SMTP_*``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.e2e.harness import free_port

# What DingTalk answers, inside HTTP 200 (errcode, errmsg).
OK = (0, "ok")
SIGN_NOT_MATCH = (310000, "sign not match")
INVALID_TIMESTAMP = (310000, "invalid timestamp")
KEYWORD_MISSING = (310000, "keywords not in content")
TOKEN_NOT_FOUND = (300001, "token is not exist")
SEND_TOO_FAST = (130101, "send too fast, exceed 20 times per minute")
SYSTEM_BUSY = (-1, "system busy")

# The failures a test may inject: an errcode, or HTTP 500.
Failure = Literal[310000, 130101, -1, 500]
_INJECTED: dict[int, tuple[int, str]] = {
    310000: SIGN_NOT_MATCH, 130101: SEND_TOO_FAST, -1: SYSTEM_BUSY,
}

RATE_LIMIT = 20  # messages a robot accepts in any 60 s
MAX_MESSAGE_BYTES = 20_000  # DingTalk refuses a larger message body
RATE_WINDOW = 60.0
TIMESTAMP_WINDOW_MS = 3_600_000  # DingTalk refuses a timestamp more than 1 hour off


class LocalCA:
    """One certificate authority for every TLS server of a test: its PEM file is
    the operator's ``ALERT_CONTACTS_EXTRA_CA_FILE``."""

    def __init__(self, directory: Path) -> None:
        self._ca = trustme.CA(organization_name="alert-contacts tests")
        self.file = directory / "test-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.file))

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for 127.0.0.1 and localhost."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` parameter (before URL encoding): base64 HMAC-SHA256 of
    ``"{timestamp}\\n{secret}"`` keyed with the secret."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Request:
    """One request the fake DingTalk received, and what it answered."""

    token: str
    body: dict[str, Any]
    arrived: float  # time.monotonic()
    wall: float  # time.time()
    status: int  # HTTP status
    errcode: int | None  # None when the HTTP status was not 200
    errmsg: str

    @property
    def delivered(self) -> bool:
        return self.status == 200 and self.errcode == 0

    @property
    def text(self) -> str:
        """The message's markdown (or plain) text, whichever type it is."""
        kind = self.body.get("msgtype")
        part = self.body.get(kind, {}) if isinstance(kind, str) else {}
        return str(part.get("text") or part.get("content") or "")

    @property
    def title(self) -> str:
        return str((self.body.get("markdown") or {}).get("title") or "")

    @property
    def at_mobiles(self) -> list[str]:
        return [str(m) for m in (self.body.get("at") or {}).get("atMobiles") or []]


@dataclass
class Robot:
    token: str
    secret: str | None = None
    keyword: str | None = None
    failures: deque[Failure] = field(default_factory=deque)
    accepted: deque[float] = field(default_factory=deque)  # monotonic times, last 60 s


class FakeDingTalk:
    """A DingTalk robot endpoint: ``POST /robot/send?access_token=...[&timestamp=&sign=]``."""

    def __init__(self, ca: LocalCA, rate_limit: int = RATE_LIMIT) -> None:
        self.ca = ca
        self.rate_limit = rate_limit
        self.port = 0
        self._robots: dict[str, Robot] = {}
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeDingTalk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK hold every answer on a kept-alive connection
            # for ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, answer = fake._handle(self.path, raw)
                payload = json.dumps(answer).encode() if answer is not None else b"busy"
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if answer is not None else "text/plain"
                )
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the recorded requests are the log

        context = self.ca.server_context()
        self.port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name="fake-dingtalk",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeDingTalk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test configures --

    @property
    def host(self) -> str:
        """The ``host:port`` entry for ``ALERT_CONTACTS_DINGTALK_HOSTS``: a host name, as
        the operator refuses IP addresses in webhook URLs."""
        return f"localhost:{self.port}"

    def add_robot(self, secret: str | None = None, keyword: str | None = None) -> str:
        """A new robot (optionally signed, optionally with a keyword); returns its token."""
        token = uuid.uuid4().hex + uuid.uuid4().hex
        with self._lock:
            self._robots[token] = Robot(token, secret, keyword)
        return token

    def set_secret(self, token: str, secret: str | None) -> None:
        with self._lock:
            self._robots[token].secret = secret

    def url(self, token: str) -> str:
        """The robot's webhook URL, as DingTalk shows it (without timestamp and sign)."""
        return f"https://{self.host}/robot/send?access_token={token}"

    def fail_next(self, token: str, count: int, failure: Failure) -> None:
        """Answer the robot's next ``count`` requests with ``failure`` (an errcode, or
        HTTP 500), whatever they carry."""
        if failure != 500 and failure not in _INJECTED:
            raise ValueError(f"failure {failure!r}: one of 310000, 130101, -1, 500")
        with self._lock:
            self._robots[token].failures.extend([failure] * count)

    def clear_failures(self, token: str) -> None:
        with self._lock:
            self._robots[token].failures.clear()

    # -- what a test reads --

    def requests(self, token: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if token is None or r.token == token]

    def delivered(self, token: str | None = None) -> list[Request]:
        return [r for r in self.requests(token) if r.delivered]

    def max_in_window(self, token: str, window: float = RATE_WINDOW) -> int:
        """The most requests that reached the robot in any ``window`` seconds
        (every request counts, refused or not: DingTalk counts them too)."""
        times = sorted(r.arrived for r in self.requests(token))
        most, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            most = max(most, end - start + 1)
        return most

    # -- the endpoint --

    def _handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        token = (query.get("access_token") or [""])[0]
        now, wall = time.monotonic(), time.time()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            body = {"_unparsed": raw.decode(errors="replace")}
        with self._lock:
            status, (errcode, errmsg) = self._decide(url.path, token, query, body, now, wall)
            self._requests.append(Request(
                token, body, now, wall, status, errcode if status == 200 else None, errmsg
            ))
        if status != 200:
            return status, None
        return 200, {"errcode": errcode, "errmsg": errmsg}

    def _decide(
        self, path: str, token: str, query: dict[str, list[str]], body: dict[str, Any],
        now: float, wall: float,
    ) -> tuple[int, tuple[int, str]]:
        robot = self._robots.get(token)
        if path != "/robot/send" or robot is None:
            return 200, TOKEN_NOT_FOUND
        if robot.failures:
            failure = robot.failures.popleft()
            return (500, (500, "injected HTTP 500")) if failure == 500 else (
                200, _INJECTED[failure])
        if "_unparsed" in body or body.get("msgtype") not in ("text", "markdown"):
            return 200, (40035, "invalid msgtype or body")
        if robot.secret is not None:
            timestamp = (query.get("timestamp") or [""])[0]
            sign = (query.get("sign") or [""])[0]  # parse_qs has URL-decoded it
            if not timestamp.isdigit() or abs(int(wall * 1000) - int(timestamp)) > (
                TIMESTAMP_WINDOW_MS
            ):
                return 200, INVALID_TIMESTAMP
            if not hmac.compare_digest(sign, dingtalk_sign(robot.secret, int(timestamp))):
                return 200, SIGN_NOT_MATCH
        text = Request(token, body, now, wall, 200, 0, "").text
        if robot.keyword is not None and robot.keyword not in text:
            return 200, KEYWORD_MISSING
        while robot.accepted and now - robot.accepted[0] >= RATE_WINDOW:
            robot.accepted.popleft()
        if len(robot.accepted) >= self.rate_limit:
            return 200, SEND_TOO_FAST
        robot.accepted.append(now)
        return 200, OK


# ---------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    arrived: float  # time.monotonic()
    login: str | None
    tls: bool

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def part(self, subtype: Literal["plain", "html"]) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return "" if body is None else str(body.get_content())  # type: ignore[attr-defined]


class _Recorder:
    """aiosmtpd handler: keeps every message it is handed."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTPProtocol, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        mail = Mail(
            str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos), message,
            time.monotonic(), login.decode() if isinstance(login, bytes) else login,
            session.ssl is not None,
        )
        with self.lock:
            self.mails.append(mail)
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on loopback: STARTTLS required before AUTH, AUTH required before mail."""

    def __init__(self, ca: LocalCA, username: str = "alerts", password: str | None = None
                 ) -> None:
        self.ca = ca
        self.username = username
        self.password = password or uuid.uuid4().hex
        self.port = 0
        self._recorder = _Recorder()
        self._controller: Controller | None = None
        self.failed_logins = 0

    def _authenticate(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: object) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username.encode()
            and hmac.compare_digest(auth_data.password, self.password.encode())
        )
        if not ok:
            self.failed_logins += 1
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=auth_data)

    def start(self) -> SmtpServer:
        context = self.ca.server_context()
        self.port = free_port()
        self._controller = Controller(
            self._recorder, hostname="127.0.0.1", port=self.port,
            server_hostname="localhost",
            tls_context=context, require_starttls=True,
            authenticator=self._authenticate, auth_required=True, auth_require_tls=True,
            ready_timeout=30,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, sender: str = "alerts@example.com") -> dict[str, str]:
        """The operator's ``ALERT_CONTACTS_SMTP_*`` settings for this server."""
        return {
            "ALERT_CONTACTS_SMTP_HOST": "127.0.0.1",
            "ALERT_CONTACTS_SMTP_PORT": str(self.port),
            "ALERT_CONTACTS_SMTP_USERNAME": self.username,
            "ALERT_CONTACTS_SMTP_PASSWORD": self.password,
            "ALERT_CONTACTS_SMTP_FROM": sender,
            "ALERT_CONTACTS_SMTP_TLS": "starttls",
        }

    def mails(self, to: str | None = None) -> list[Mail]:
        """Accepted messages, or those with ``to`` among the envelope recipients."""
        with self._recorder.lock:
            return [
                m for m in self._recorder.mails
                if to is None or to.lower() in (r.lower() for r in m.rcpt_tos)
            ]
