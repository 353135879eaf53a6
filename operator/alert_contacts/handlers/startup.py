"""Operator startup: settings, the webhook server, the API client and the reconcile loop.

Everything configurable is read here, once; nothing is read at import time.
Peering is off (``standalone``): run exactly one replica (the chart's
Deployment uses the Recreate strategy), because two reconcilers would race
on status writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf

from alert_contacts import metrics
from alert_contacts.receiver.server import start_receiver
from alert_contacts.runtime.certs import write_self_signed
from alert_contacts.runtime.delivery import start_delivery
from alert_contacts.runtime.kube import Kube, load_client
from alert_contacts.runtime.options import RunOptions
from alert_contacts.runtime.reconciler import Indices, Reconciler

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


def _leader(memo: kopf.Memo) -> Callable[[], bool]:
    """Whether this replica may deliver: with leader election (``memo.leadership``)
    only the Lease holder does; without it, the one replica does."""
    def is_leader() -> bool:
        leadership = getattr(memo, "leadership", None)
        return leadership is None or bool(leadership.is_leader())
    return is_leader


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    contacts_index: kopf.Index[Any, Any],
    bots_index: kopf.Index[Any, Any],
    groups_index: kopf.Index[Any, Any],
    secrets_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
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

    indices = Indices(contacts_index, bots_index, groups_index, secrets_index)
    memo.reconciler = Reconciler(indices, options.settings, Kube(load_client()))
    memo.reconcile_task = asyncio.create_task(memo.reconciler.run(), name="reconcile loop")
    memo.delivery = start_delivery(options, indices, memo.reconciler.kube, _leader(memo))
    try:
        memo.receiver = await start_receiver(options.receiver, memo.delivery)
    except OSError as e:  # a taken port: stop with a clear message rather than retry
        raise kopf.PermanentError(
            f"receiver: cannot listen on {options.receiver.address}:{options.receiver.port}: "
            f"{e.strerror or e} (set --receiver-port / ALERT_CONTACTS_RECEIVER_PORT; 0 "
            "disables the receiver)") from None
    logger.info(
        "alert-contacts operator starting: quota %d, default region %s, DingTalk hosts %s, "
        "webhook %s", options.settings.quota, options.settings.default_region,
        ",".join(options.settings.dingtalk_hosts), options.webhook,
    )


@kopf.on.event("", "v1", "namespaces")
async def indexes_complete(memo: kopf.Memo, **_: Any) -> None:
    """kopf runs no resource handler until every index holds its initial listing,
    and a cluster always has namespaces: the first namespace event marks our
    view complete, for the reconciler and for admission."""
    memo.reconciler.synced.set()


# A change waiting this long for a reconcile pass means the loop is stuck.
STALL_LIMIT_SECONDS = 60.0


@kopf.on.probe(id="synced")
async def synced_probe(memo: kopf.Memo, **_: Any) -> bool:
    """/healthz answers 500 until the indexes are complete (readiness keeps
    admission requests away from a pod that would refuse them with 503) and
    when the reconcile loop is stuck (liveness restarts the pod)."""
    reconciler: Reconciler = memo.reconciler
    if not reconciler.synced.is_set():
        raise kopf.PermanentError("not synced yet: the initial listing is not indexed")
    stalled = reconciler.stalled_for()
    if stalled > STALL_LIMIT_SECONDS:
        raise kopf.PermanentError(f"a change has waited {stalled:.0f}s for a reconcile pass")
    return True


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "receiver", None) is not None:
        await memo.receiver.cleanup()
    await memo.delivery.close()
    task: asyncio.Task[None] = memo.reconcile_task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
