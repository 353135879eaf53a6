"""Routes of the receiver: ``POST /v1/alerts/{namespace}/{group}`` and ``GET /healthz``.

A public-facing server, so every request is bounded: the body (413 past the
cap), the number handled at once (503 with Retry-After past it), the time to
read the body and the time to deliver. Alertmanager retries on 5xx and network
errors only, never on 4xx: a request it should not repeat (bad token, bad
payload, unknown group) gets 4xx, one that may succeed later gets 5xx.
Nothing personal (addresses, numbers, tokens) reaches the logs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from alert_contacts import metrics
from alert_contacts.domain.alerts import Notification, PayloadError, parse_notification
from alert_contacts.domain.delivery import Answer, namespace_token

logger = logging.getLogger(__name__)

ALERTS_ROUTE = "/v1/alerts/{namespace}/{group}"
# Alertmanager's own default webhook timeout is unset (its HTTP client waits);
# reading a body has no reason to take long.
BODY_READ_SECONDS = 10.0
RETRY_AFTER_BUSY = "5"
RETRY_AFTER_NOT_LEADER = "10"


class Deliverer(Protocol):
    """What the routes need from the delivery engine."""

    def is_leader(self) -> bool: ...

    def has_group(self, namespace: str, name: str) -> bool: ...

    async def deliver(self, namespace: str, group: str, notification: Notification) -> Answer: ...


@dataclass(frozen=True)
class ReceiverConfig:
    token: str | None
    max_body_bytes: int = 1024 * 1024
    max_concurrency: int = 32
    # Upper bound on one request's delivery, above the engine's own retry budget.
    request_timeout: float = 90.0


def _bearer(header: str | None) -> bytes | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip().encode("utf-8")


def _text(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers or None)


def _go_elsewhere(status: int, message: str, **headers: str) -> web.Response:
    """An answer after which Alertmanager's retry should open a new connection: on this
    keep-alive one it would reach this same busy or not-leading pod again."""
    response = _text(status, message, **headers)
    response.force_close()
    return response


class Receiver:
    def __init__(self, config: ReceiverConfig, deliverer: Deliverer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.deliverer = deliverer
        self._clock = clock
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._token = config.token.encode("utf-8") if config.token else None
        self._told_no_token = False

    def app(self) -> web.Application:
        # client_max_size makes aiohttp answer 413 itself when the body is read.
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post(ALERTS_ROUTE, self.post_alerts)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        return _text(200, "ok" if self.deliverer.is_leader() else "ok (not the leader)")

    def _authorized(self, request: web.Request, namespace: str) -> bool:
        """The master token for any namespace, or the namespace's own token
        (``namespace_token``) for its groups; both compared in constant time."""
        if self._token is None:
            if not self._told_no_token:
                self._told_no_token = True
                logger.warning(
                    "receiver: refusing every request with 401: no bearer token is configured "
                    "(set ALERT_CONTACTS_RECEIVER_TOKEN or --receiver-token-file)")
            return False
        given = _bearer(request.headers.get("Authorization"))
        if given is None:
            return False
        own = namespace_token(self._token.decode("utf-8"), namespace).encode("utf-8")
        # Both compared (no early exit), so the timing tells nothing of which matched.
        master_ok = hmac.compare_digest(given, self._token)
        own_ok = hmac.compare_digest(given, own)
        return master_ok or own_ok

    async def post_alerts(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        group = request.match_info["group"]
        if not self._authorized(request, namespace):
            metrics.notification_received("unauthorized")
            return _text(401, "missing or wrong bearer token",
                         **{"WWW-Authenticate": 'Bearer realm="alert-contacts"'})
        if (request.content_length or 0) > self.config.max_body_bytes:
            metrics.notification_received("too_large")
            return _text(413, f"body over {self.config.max_body_bytes} bytes")
        if self._slots.locked():
            metrics.notification_received("busy")
            return _go_elsewhere(503, "receiver busy, retry later",
                                 **{"Retry-After": RETRY_AFTER_BUSY})
        async with self._slots:
            return await self._handle(request, namespace, group)

    async def _handle(self, request: web.Request, namespace: str, group: str) -> web.Response:
        try:
            async with asyncio.timeout(BODY_READ_SECONDS):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            metrics.notification_received("too_large")
            return _text(413, f"body over {self.config.max_body_bytes} bytes")
        except TimeoutError:
            metrics.notification_received("timeout")
            return _text(408, f"body not received within {BODY_READ_SECONDS:.0f}s")
        try:
            notification = parse_notification(body)
        except PayloadError as e:
            metrics.notification_received("malformed")
            logger.info("receiver: %s/%s: malformed payload refused (400): %s",
                        namespace, group, e)
            return _text(400, f"malformed Alertmanager payload: {e}")
        if not self.deliverer.has_group(namespace, group):
            metrics.notification_received("unknown_group")
            return _text(404, f"no ContactGroup {group!r} in namespace {namespace!r}")
        if not self.deliverer.is_leader():
            metrics.notification_received("not_leader")
            return _go_elsewhere(503, "this replica is not the leader; retry later",
                         **{"Retry-After": RETRY_AFTER_NOT_LEADER})
        started = self._clock()
        try:
            async with asyncio.timeout(self.config.request_timeout):
                answer = await self.deliverer.deliver(namespace, group, notification)
        except TimeoutError:
            metrics.notification_received("timeout")
            logger.warning("receiver: %s/%s: delivery did not finish within %.0fs; "
                           "answering 503 so Alertmanager retries",
                           namespace, group, self.config.request_timeout)
            return _text(503, "delivery did not finish in time; retry")
        metrics.notification_received("delivered" if answer.status < 500 else "retry")
        logger.info("receiver: %s/%s: %d alert(s) -> HTTP %d in %.2fs (%s)", namespace, group,
                    len(notification.alerts), answer.status, self._clock() - started,
                    answer.summary)
        return _text(answer.status, answer.summary)
