"""Runtime pieces that need no cluster: health, stall detection, log hygiene."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime import logs, reconciler
from alert_contacts.runtime.health import STALL_LIMIT_SECONDS, health_problem, serve_health
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import KINDS, Store
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


class FakeTime:
    """The reconciler's clock, moved by the test only."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


class SlowKube:
    """Writes one at a time, each taking ``seconds``; the watch echoes each at once."""

    def __init__(self, store: Store, clock: FakeTime, r: Reconciler, seconds: float) -> None:
        self.store, self.clock, self.r, self.seconds = store, clock, r, seconds
        self.one_at_a_time = asyncio.Lock()
        self.stalled: list[float] = []
        self.written = asyncio.Event()
        self.count = 0

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any], *,
                           budget: Callable[[], float] | None = None) -> bool:
        async with self.one_at_a_time:
            self.clock.now += self.seconds
            self.stalled.append(self.r.stalled_for())  # what /healthz would see now
            self.store.put("Contact", contact(ref.name, patch["status"]))
            self.count += 1
            if self.count == 4:
                self.written.set()
        return True

    async def post_event(self, *args: Any) -> None:
        pass


def contact(name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "a", "uid": f"u-{name}", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"email": f"{name}@example.com"}, "status": status or {}}


def listening_reconciler(monkeypatch: pytest.MonkeyPatch) -> tuple[Store, Reconciler, FakeTime]:
    clock = FakeTime()
    monkeypatch.setattr(reconciler, "time", clock)
    store = Store(Settings())
    r = Reconciler(store=store, settings=Settings(), kube=None)  # type: ignore[arg-type]
    store.listen(r.on_change)
    for kind in KINDS:
        store.mark_listed(kind)
    return store, r, clock


async def four_contacts_until_written(store: Store, r: Reconciler, kube: SlowKube) -> None:
    """Run the loop over four new Contacts until the last one's write."""
    loop = asyncio.create_task(r.run())
    for i in range(4):
        store.put("Contact", contact(f"c{i}"))
    await asyncio.wait_for(kube.written.wait(), 5)
    loop.cancel()


def test_a_long_pass_that_keeps_writing_is_no_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    # Four writes of 40 s each (an upgrade rewriting every status at the API's write
    # rate, say): 160 s of pass while the echoes of its first writes wait for the next.
    store, r, clock = listening_reconciler(monkeypatch)
    kube = SlowKube(store, clock, r, seconds=40)
    r.kube = kube  # type: ignore[assignment]

    asyncio.run(four_contacts_until_written(store, r, kube))
    assert max(kube.stalled) <= 40 < STALL_LIMIT_SECONDS


def test_a_long_first_pass_that_keeps_planning_is_no_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, r, clock = listening_reconciler(monkeypatch)
    kube = SlowKube(store, clock, r, seconds=0)
    r.kube = kube  # type: ignore[assignment]
    monkeypatch.setattr(reconciler, "PLAN_CHUNK", 1)
    stalled: list[float] = []
    plan = r.plan

    def slow_plan(refs: Any) -> Any:
        clock.now += 40  # a chunk of a first pass over 50,000 objects
        stalled.append(r.stalled_for())
        r.poke()  # a watch event arrived meanwhile: it waits for the next pass
        return plan(refs)

    monkeypatch.setattr(r, "plan", slow_plan)

    asyncio.run(four_contacts_until_written(store, r, kube))
    assert max(stalled) <= 40 < STALL_LIMIT_SECONDS
