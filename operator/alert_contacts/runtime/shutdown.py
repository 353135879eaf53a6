"""SIGTERM: drain the admission webhook, then let kopf stop.

The API server keeps its connections to a webhook open between requests, and
kube-proxy keeps such a connection going to the Pod it was opened to, even once
the Pod has left the Service's endpoints. kopf's webhook server, on SIGTERM,
closes its idle connections at once; a request already on its way on one of
them fails with EOF, which the API server does not retry, so that apply fails.

So a SIGTERM first *drains*: for ``DRAIN_SECONDS`` the webhook keeps answering,
every response with ``Connection: close``, and the API server drops each of
those connections itself after its answer (no race: the client closes). Only
then is kopf's stop flag raised, and kopf stops the server and runs the cleanup
handlers as it would on its own SIGTERM. SIGINT (Ctrl+C) stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import kopf
from aiohttp import web

logger = logging.getLogger(__name__)

# Long enough for the API server's in-flight requests on kept-alive connections
# to be answered with "Connection: close"; short against the 25 s left of the
# chart's grace period after its preStop sleep.
DRAIN_SECONDS = 1.0


class DrainingWebhookServer(kopf.WebhookServer):
    """kopf's webhook server that, while ``draining``, closes each connection after its answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draining = False

    async def _serve(self, fn: Any, request: web.Request) -> web.Response:  # type: ignore[override]
        # kopf calls ``self._serve(fn, request)``; its own is a staticmethod.
        response = await kopf.WebhookServer._serve(fn, request)
        if self.draining:
            response.force_close()
        return response


class Shutdown:
    """Owns the operator's SIGTERM: drain the webhook server (if any), then raise ``stop_flag``.

    ``stop_flag`` is passed to ``kopf.run``. ``install`` must run after kopf has
    installed its own signal handlers (see ``install_after_kopf``).
    """

    def __init__(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        self.drain_seconds = drain_seconds
        self.stop_flag = asyncio.Event()
        self.server: DrainingWebhookServer | None = None
        self.draining = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.terminate, loop)

    def install_after_kopf(self) -> None:
        """Take SIGTERM over from kopf; call from a startup handler.

        kopf adds its SIGTERM handler when it has spawned its tasks, which is
        after the first step of the startup handlers' task; a callback scheduled
        from a startup handler runs after that, whenever the handler runs.
        """
        loop = asyncio.get_running_loop()
        loop.call_soon(self.install, loop)

    def terminate(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.draining:
            return
        self.draining = True
        if self.server is None:
            logger.info("SIGTERM: stopping")
            self.stop_flag.set()
            return
        logger.info("SIGTERM: answering admission with Connection: close for %.1f s, then stopping",
                    self.drain_seconds)
        self.server.draining = True
        loop.call_later(self.drain_seconds, self.stop_flag.set)
