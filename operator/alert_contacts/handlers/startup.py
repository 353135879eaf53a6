"""Operator startup: settings, the webhook server, the API client, the watches, the
reconcile loop, and alert delivery (the receiver and the delivery engine).

Everything configurable is read here, once; nothing is read at import time.
kopf runs no watch of ours: ``runtime.watch`` lists and watches every kind into
``runtime.store`` (kopf's per-object indexes cost quadratic time at start).
kopf's peering is off (``standalone``): it pauses operators, it does not elect
one. Every replica watches and admits; the holder of a Lease reconciles
(runtime/lease.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import kopf

from alert_contacts import metrics
from alert_contacts.receiver.server import start_receiver
from alert_contacts.runtime.certs import write_self_signed
from alert_contacts.runtime.delivery import DeliveryHandover, start_delivery
from alert_contacts.runtime.health import health_problem, serve_health
from alert_contacts.runtime.kube import Kube, load_client
from alert_contacts.runtime.lease import leader_election
from alert_contacts.runtime.options import RunOptions
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.shutdown import DrainingWebhookServer, Shutdown
from alert_contacts.runtime.store import Store
from alert_contacts.runtime.watch import start_watches

logger = logging.getLogger(__name__)


def _webhook_server(options: RunOptions, cert_dir: Path | None) -> DrainingWebhookServer:
    """The webhook server; in local mode its self-signed certificate goes to ``cert_dir``."""
    if options.webhook == "service":
        assert options.webhook_cert_dir is not None  # enforced by options.parse
        return DrainingWebhookServer(
            addr="0.0.0.0", port=options.webhook_port,
            certfile=options.webhook_cert_dir / "tls.crt",
            pkeyfile=options.webhook_cert_dir / "tls.key",
        )
    assert cert_dir is not None
    ca = write_self_signed(cert_dir, ["127.0.0.1", "localhost", *options.webhook_hostnames])
    return DrainingWebhookServer(
        addr="127.0.0.1", host="127.0.0.1", port=options.webhook_port or None,
        certfile=cert_dir / "tls.crt", pkeyfile=cert_dir / "tls.key", cafile=ca,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    options: RunOptions = memo.options
    memo.settings = options.settings
    # kopf posts Kubernetes Events for its own per-object log lines; ours are
    # posted on Ready transitions only, so keep kopf's to real problems.
    settings.posting.level = logging.WARNING
    shutdown: Shutdown = memo.shutdown
    memo.webhook_cert_dir = None
    if options.webhook == "local":  # a key for this run only, removed on cleanup
        memo.webhook_cert_dir = Path(tempfile.mkdtemp(prefix="alert-contacts-webhook-"))
        settings.admission.managed = options.webhook_config_name
    if options.webhook != "none":
        shutdown.server = _webhook_server(options, memo.webhook_cert_dir)
        settings.admission.server = shutdown.server
    shutdown.install_after_kopf()
    if options.metrics_port:
        metrics.serve(options.metrics_port)

    # The operator's one API client; ``memo.kube.request`` serves any call beyond
    # watches, status and Events (the Lease, for instance).
    memo.kube = Kube(await load_client())
    store = Store(options.settings)
    memo.leadership, memo.elector = leader_election(options.lease, memo.kube)
    memo.reconciler = Reconciler(store, options.settings, memo.kube, memo.leadership)
    store.listen(memo.reconciler.on_change)
    memo.delivery = start_delivery(options, store, memo.reconciler.engine, memo.kube,
                                   memo.leadership.is_leader)
    store.listen(memo.delivery.on_change)  # send-test annotations
    if memo.elector is not None:  # recent sends and delivery keys go with the Lease
        memo.elector.handover = DeliveryHandover(memo.delivery)
    try:
        memo.receiver = await start_receiver(options.receiver, memo.delivery)
    except OSError as e:  # a taken port: stop with a clear message rather than retry
        raise kopf.PermanentError(
            f"receiver: cannot listen on {options.receiver.address}:{options.receiver.port}: "
            f"{e.strerror or e} (set --receiver-port / ALERT_CONTACTS_RECEIVER_PORT; 0 "
            "disables the receiver)") from None
    memo.tasks = [
        *start_watches(memo.kube, store),
        asyncio.create_task(memo.reconciler.run(), name="reconcile loop"),
        asyncio.create_task(memo.delivery.tests_after_sync(store.synced, memo.leadership.wait),
                            name="test sends asked for while the operator was down"),
    ]
    if memo.elector is not None:
        memo.elector.start()
    if options.health_port:
        reconciler: Reconciler = memo.reconciler
        memo.health = await serve_health(options.health_port, lambda: health_problem(
            reconciler.synced.is_set(), reconciler.stalled_for()))
    logger.info(
        "alert-contacts operator starting: quota %d, default region %s, DingTalk hosts %s, "
        "webhook %s", options.settings.quota, options.settings.default_region,
        ",".join(options.settings.dingtalk_hosts), options.webhook,
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "health", None) is not None:
        await memo.health.cleanup()
    if getattr(memo, "receiver", None) is not None:
        await memo.receiver.cleanup()
    if getattr(memo, "delivery", None) is not None:
        await memo.delivery.close()
    tasks: list[asyncio.Task[None]] = memo.tasks
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if memo.elector is not None:  # after the writers stopped: release for a quick handover
        await memo.elector.stop()
    kube: Kube = memo.kube
    await kube.close()
    if memo.webhook_cert_dir is not None:
        shutil.rmtree(memo.webhook_cert_dir, ignore_errors=True)
