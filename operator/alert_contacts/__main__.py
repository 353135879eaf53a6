"""``python -m alert_contacts``: the one entry point (production, ``make run``, tests)."""

from __future__ import annotations

import os
import sys

import kopf

from alert_contacts.runtime import logs
from alert_contacts.runtime.heap import freeze_after_full_collections
from alert_contacts.runtime.options import RunOptions, parse
from alert_contacts.runtime.shutdown import Shutdown


def main(argv: list[str] | None = None) -> None:
    try:
        options: RunOptions = parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ValueError as e:
        sys.exit(f"alert-contacts-operator: {e}")
    logs.configure(options.verbose)
    import alert_contacts.handlers  # registers the handlers with kopf

    if options.webhook != "none":
        import alert_contacts.handlers.admission  # noqa: F401

    freeze_after_full_collections.install()  # no full GC walks of the store (runtime/heap.py)
    shutdown = Shutdown()  # SIGTERM drains the webhook first (runtime/shutdown.py)
    kopf.run(
        clusterwide=True,
        standalone=True,  # no kopf peering: a Lease elects the writer (runtime/lease.py)
        # /healthz is served by runtime/health.py (handlers/startup.py starts it).
        memo=kopf.Memo(options=options, shutdown=shutdown),
        stop_flag=shutdown.stop_flag,
    )


if __name__ == "__main__":
    main()
