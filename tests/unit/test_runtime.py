"""Runtime pieces that need no cluster: health, stall detection, log hygiene."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import aiohttp
import pytest

from alert_contacts.runtime import logs, reconciler
from alert_contacts.runtime.health import STALL_LIMIT_SECONDS, health_problem, serve_health
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import Store
from alert_contacts.settings import Settings


def _reconciler() -> Reconciler:
    return Reconciler(store=Store(Settings()), settings=Settings(), kube=None)  # type: ignore[arg-type]


def _probe(r: Reconciler) -> str | None:
    return health_problem(r.synced.is_set(), r.stalled_for())


def test_health_fails_until_synced() -> None:
    r = _reconciler()
    assert "not synced" in (_probe(r) or "")
    r.synced.set()
    assert _probe(r) is None


def test_healthz_answers_503_with_the_reason_then_200_without_logging_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    not_synced = "not synced yet: the initial listing is not in the store"
    problem: list[str | None] = [not_synced]

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        runner = await serve_health(port, lambda: problem[0])
        answers = []
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(2):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        answers.append((response.status, await response.json()))
                    problem[0] = None
        finally:
            await runner.cleanup()
        return answers

    with caplog.at_level(logging.INFO):
        answers = asyncio.run(scenario())
    assert answers == [
        (503, {"synced": False, "reason": not_synced}),
        (200, {"synced": True}),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_health_fails_when_a_change_waits_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _reconciler()
    r.synced.set()
    now = [1000.0]
    monkeypatch.setattr(reconciler.time, "monotonic", lambda: now[0])
    r.poke()
    now[0] += STALL_LIMIT_SECONDS - 1
    assert _probe(r) is None
    now[0] += 2
    assert r.stalled_for() == pytest.approx(STALL_LIMIT_SECONDS + 1)
    assert "waited 61s" in (_probe(r) or "")


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
