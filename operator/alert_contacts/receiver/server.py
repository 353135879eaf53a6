"""Serving the receiver: its own aiohttp server and port, plain HTTP or TLS."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from alert_contacts.receiver.app import Deliverer, Receiver, ReceiverConfig
from alert_contacts.runtime.options import ReceiverOptions

logger = logging.getLogger(__name__)


def _tls(options: ReceiverOptions) -> ssl.SSLContext | None:
    if options.cert_dir is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.cert_dir / "tls.crt", options.cert_dir / "tls.key")
    return context


# Requests still running when the process stops get this long (aiohttp's default is 60 s,
# past the pod's grace period: the kubelet would kill the process before it released the
# Lease). An unanswered request is retried by Alertmanager.
SHUTDOWN_SECONDS = 5.0


async def start_receiver(options: ReceiverOptions, deliverer: Deliverer,
                         shutdown_timeout: float = SHUTDOWN_SECONDS) -> web.AppRunner | None:
    """Start serving; None when the receiver is disabled (port 0)."""
    if not options.port:
        logger.info("receiver: disabled (--receiver-port 0)")
        return None
    receiver = Receiver(ReceiverConfig(
        token=options.token, max_body_bytes=options.max_body_bytes,
        max_concurrency=options.max_concurrency,
    ), deliverer)
    # No access log: request lines are noise at INFO, and our own line per request says more.
    runner = web.AppRunner(receiver.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, options.address, options.port, ssl_context=_tls(options),
                       backlog=128)
    await site.start()
    logger.info(
        "receiver: serving POST /v1/alerts/NAMESPACE/GROUP on %s://%s:%d (bearer token from %s)",
        "https" if options.cert_dir else "http", options.address, options.port,
        options.token_source,
    )
    if options.token is None:
        logger.warning("receiver: no bearer token configured (ALERT_CONTACTS_RECEIVER_TOKEN or "
                       "--receiver-token-file): every request is refused with 401")
    return runner
