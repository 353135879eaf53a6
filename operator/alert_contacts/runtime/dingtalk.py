"""Send one DingTalk robot message over HTTPS: one attempt, one SendOutcome.

Retries, queues and rate limits belong to the caller. The webhook URL is
checked against the allowed hosts right before each request (a Secret may have
changed since validation), redirects are not followed (they could carry the
token elsewhere) and nothing here logs or returns the token.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from alert_contacts.domain import outcome as reasons
from alert_contacts.domain.dingtalk import DingTalkMessage, classify_response, signed_url
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.validation import check_webhook_url
from alert_contacts.settings import allowed_endpoints

from .tlsclient import client_ssl_context, tls_failure

MAX_RESPONSE_BYTES = 64 * 1024
CONNECTIONS_PER_HOST = 8


class DingTalkSender:
    """One shared aiohttp session for every bot; create inside the running loop's lifetime."""

    def __init__(
        self, allowed_hosts: Iterable[str], extra_ca_file: Path | None, timeout: float
    ) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        allowed_endpoints(self.allowed_hosts)  # refuse a malformed entry now, not per send
        if timeout <= 0:
            raise ValueError(f"timeout {timeout}: must be positive")
        self.timeout = timeout
        self._ssl = client_ssl_context(extra_ca_file)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit_per_host=CONNECTIONS_PER_HOST),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # HTTPS_PROXY / NO_PROXY from the environment: many clusters reach
                # the internet only through a proxy.
                trust_env=True,
                raise_for_status=False,
            )
        return self._session

    async def send(self, url: str, secret: str | None, message: DingTalkMessage) -> SendOutcome:
        """Post ``message`` to the robot at ``url`` (signed when ``secret`` is given)."""
        checked = check_webhook_url(url.strip(), self.allowed_hosts)
        if isinstance(checked, str):
            reason = (
                reasons.HOST_NOT_ALLOWED
                if "host" in checked or "port" in checked
                else reasons.INVALID_WEBHOOK
            )
            return SendOutcome("permanent", reason, None, f"webhook URL refused: {checked}")
        target = url.strip()
        if secret and secret.strip():
            target = signed_url(target, secret.strip(), int(time.time() * 1000))
        where = _where(target)
        body = json.dumps(message.body(), ensure_ascii=False, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client().post(
                    target,
                    data=body,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    allow_redirects=False,
                ) as response:
                    answer = await response.content.read(MAX_RESPONSE_BYTES)
                    return classify_response(response.status, answer)
        except TimeoutError:
            return SendOutcome(
                "transient", reasons.TIMEOUT, None, f"no answer from {where} in {self.timeout:g}s"
            )
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            return SendOutcome(
                "transient", reasons.TLS_ERROR, None, f"TLS with {where} failed: {tls_failure(exc)}"
            )
        except (aiohttp.ClientError, OSError) as exc:
            # The exception text may hold the URL (and so the token): name only its kind.
            return SendOutcome(
                "transient",
                reasons.NETWORK_ERROR,
                None,
                f"cannot reach {where}: {exc.__class__.__name__}",
            )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host
