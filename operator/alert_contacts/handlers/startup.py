"""Operator startup: settings, the webhook server, the API client, the watches and the
reconcile loop.

Everything configurable is read here, once; nothing is read at import time.
kopf runs no watch of ours: ``runtime.watch`` lists and watches every kind into
``runtime.store`` (kopf's per-object indexes cost quadratic time at start).
Peering is off (``standalone``): run exactly one replica (the chart's
Deployment uses the Recreate strategy), because two reconcilers would race
on status writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import kopf

from alert_contacts import metrics
from alert_contacts.runtime.certs import write_self_signed
from alert_contacts.runtime.kube import Kube, load_client
from alert_contacts.runtime.options import RunOptions
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import Store
from alert_contacts.runtime.watch import start_watches

logger = logging.getLogger(__name__)


def _webhook_server(options: RunOptions) -> kopf.WebhookServer:
    if options.webhook == "service":
        assert options.webhook_cert_dir is not None  # enforced by options.parse
        return kopf.WebhookServer(
            addr="0.0.0.0", port=options.webhook_port,
            certfile=options.webhook_cert_dir / "tls.crt",
            pkeyfile=options.webhook_cert_dir / "tls.key",
        )
    cert_dir = Path(tempfile.mkdtemp(prefix="alert-contacts-webhook-"))
    ca = write_self_signed(cert_dir, ["127.0.0.1", "localhost", *options.webhook_hostnames])
    return kopf.WebhookServer(
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
    if options.webhook != "none":
        settings.admission.server = _webhook_server(options)
        if options.webhook == "local":
            settings.admission.managed = options.webhook_config_name
    if options.metrics_port:
        metrics.serve(options.metrics_port)

    # The operator's one API client; ``memo.kube.request`` serves any call beyond
    # watches, status and Events (a Lease, for instance).
    memo.kube = Kube(await load_client())
    store = Store(options.settings)
    memo.reconciler = Reconciler(store, options.settings, memo.kube)
    store.listen(memo.reconciler.on_change)
    memo.tasks = [
        *start_watches(memo.kube, store),
        asyncio.create_task(memo.reconciler.run(), name="reconcile loop"),
    ]
    logger.info(
        "alert-contacts operator starting: quota %d, default region %s, DingTalk hosts %s, "
        "webhook %s", options.settings.quota, options.settings.default_region,
        ",".join(options.settings.dingtalk_hosts), options.webhook,
    )


# A change waiting this long for a reconcile pass means the loop is stuck.
STALL_LIMIT_SECONDS = 60.0


@kopf.on.probe(id="synced")
async def synced_probe(memo: kopf.Memo, **_: Any) -> bool:
    """/healthz answers 500 until the store holds every kind's initial listing
    (readiness keeps admission requests away from a pod that would refuse them
    with 503) and when the reconcile loop is stuck (liveness restarts the pod)."""
    reconciler: Reconciler = memo.reconciler
    if not reconciler.synced.is_set():
        raise kopf.PermanentError("not synced yet: the initial listing is not in the store")
    stalled = reconciler.stalled_for()
    if stalled > STALL_LIMIT_SECONDS:
        raise kopf.PermanentError(f"a change has waited {stalled:.0f}s for a reconcile pass")
    return True


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    tasks: list[asyncio.Task[None]] = memo.tasks
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    kube: Kube = memo.kube
    await kube.close()
