"""Runtime pieces that need no cluster: health, stall detection, log hygiene."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from alert_contacts.handlers.startup import STALL_LIMIT_SECONDS, synced_probe
from alert_contacts.runtime import logs, reconciler
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import Store
from alert_contacts.settings import Settings


def _reconciler() -> Reconciler:
    return Reconciler(store=Store(Settings()), settings=Settings(), kube=None)  # type: ignore[arg-type]


def _probe(r: Reconciler) -> Any:
    return asyncio.run(synced_probe(memo=SimpleNamespace(reconciler=r)))


def test_health_fails_until_synced() -> None:
    r = _reconciler()
    with pytest.raises(kopf.PermanentError, match="not synced"):
        _probe(r)
    r.synced.set()
    assert _probe(r) is True


def test_health_fails_when_a_change_waits_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _reconciler()
    r.synced.set()
    now = [1000.0]
    monkeypatch.setattr(reconciler.time, "monotonic", lambda: now[0])
    r.poke()
    now[0] += STALL_LIMIT_SECONDS - 1
    assert _probe(r) is True
    now[0] += 2
    assert r.stalled_for() == pytest.approx(STALL_LIMIT_SECONDS + 1)
    with pytest.raises(kopf.PermanentError, match="waited 61s"):
        _probe(r)


def test_a_later_poke_does_not_reset_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _reconciler()
    now = [0.0]
    monkeypatch.setattr(reconciler.time, "monotonic", lambda: now[0])
    r.poke()
    now[0] = 30.0
    r.poke()  # events keep coming while a pass is stuck: the clock keeps running
    now[0] = 45.0
    assert r.stalled_for() == 45.0


def test_kopfs_admission_refusals_are_filtered_from_logs() -> None:
    # kopf logs a refused request with its message, which names the refused email.
    keep = logs._NoAdmissionRefusals().filter

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, message, None, None)

    assert not keep(record("Webhook 'contacts' failed permanently: spec.email 'a@@b.com': bad"))
    assert keep(record("Handler 'contact_changed' failed with an exception. Will retry."))
