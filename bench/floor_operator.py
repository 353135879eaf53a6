"""The floor for apply->Ready: a kopf operator on the same CRDs that does nothing but
mark every new Contact Ready (and, with ``--webhook``, a validating webhook that
admits everything but a labelled probe). No uniqueness, no quota: the cost of kopf
and the API alone.

    KUBECONFIG=... python -m bench.floor_operator [--webhook | --webhook-only]
                                                  [--webhook-config-name NAME]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import kopf

from alert_contacts.domain.types import GROUP, VERSION
from alert_contacts.runtime.certs import write_self_signed

ARGS = argparse.Namespace(webhook=False, webhook_only=False,
                          webhook_config_name="alert-contacts-floor.dev")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    memo.cert_dir = None
    if ARGS.webhook:
        cert_dir = memo.cert_dir = Path(tempfile.mkdtemp(prefix="alert-contacts-floor-"))
        ca = write_self_signed(cert_dir, ["127.0.0.1", "localhost"])
        settings.admission.server = kopf.WebhookServer(
            addr="127.0.0.1", host="127.0.0.1", certfile=cert_dir / "tls.crt",
            pkeyfile=cert_dir / "tls.key", cafile=ca,
        )
        settings.admission.managed = ARGS.webhook_config_name


@kopf.on.cleanup()
async def remove_certificate(memo: kopf.Memo, **_: Any) -> None:
    if memo.cert_dir is not None:
        shutil.rmtree(memo.cert_dir, ignore_errors=True)


async def mark_ready(meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["observedGeneration"] = meta.get("generation")
    patch.status["conditions"] = [{
        "type": "Ready", "status": "True", "reason": "Accepted", "message": "",
        "observedGeneration": meta.get("generation"), "lastTransitionTime": now,
    }]


# The benchmark runs this webhook beside the operator's: a probe carrying this label
# tells it which of the two answers in a namespace.
REFUSE_LABEL = "bench.alerting.contacts.dev/refuse"


async def admit_everything(labels: kopf.Labels, **_: Any) -> None:
    """A validating webhook that admits every request (but a labelled probe)."""
    if REFUSE_LABEL in labels:
        raise kopf.AdmissionError("refused by the floor's no-op webhook (a probe)", code=400)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhook", action="store_true")
    parser.add_argument("--webhook-config-name", default=ARGS.webhook_config_name)
    parser.add_argument("--webhook-only", action="store_true",
                        help="no handler marking Contacts Ready (and no watch): the "
                             "admission baseline in a cluster that already holds many")
    parser.parse_args(namespace=ARGS)
    logging.basicConfig(level=logging.WARNING)
    if not ARGS.webhook_only:
        kopf.on.create(GROUP, VERSION, "contacts")(mark_ready)
    ARGS.webhook = ARGS.webhook or ARGS.webhook_only
    if ARGS.webhook:
        kopf.on.validate(GROUP, VERSION, "contacts", id="floor", operations=["CREATE", "UPDATE"])(
            admit_everything
        )
    kopf.run(clusterwide=True, standalone=True)


if __name__ == "__main__":
    main()
