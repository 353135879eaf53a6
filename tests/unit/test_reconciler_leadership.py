"""The reconcile loop writes only while its replica leads (the Lease holder)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime.lease import Leadership, LeaseTimings
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import KINDS, Store
from tests.unit.test_reconciler import SETTINGS, RecordingKube, body


def with_one_contact(leadership: Leadership) -> tuple[Reconciler, RecordingKube]:
    kube, store = RecordingKube(), Store(SETTINGS)
    reconciler = Reconciler(store, SETTINGS, kube, leadership)  # type: ignore[arg-type]
    store.listen(reconciler.on_change)
    for kind in KINDS:
        store.mark_listed(kind)
    store.put("Contact", body("alice", "alice@example.com"))
    return reconciler, kube


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_follower_writes_nothing_until_it_leads() -> None:
    async def scenario() -> None:
        clock = Clock()
        leadership = Leadership("me", LeaseTimings(), clock)
        reconciler, kube = with_one_contact(leadership)
        loop = asyncio.create_task(reconciler.run())
        reconciler.poke()
        await asyncio.sleep(0.05)
        assert kube.patches == []
        assert reconciler.stalled_for() == 0  # another replica's work: no liveness failure

        leadership.renewed(clock.now)  # the Lease is ours
        for _ in range(100):
            if kube.patches:
                break
            await asyncio.sleep(0.01)
        assert len(kube.patches) == 1
        loop.cancel()

    asyncio.run(scenario())


def test_a_write_after_the_renew_deadline_is_not_sent() -> None:
    async def scenario() -> None:
        clock = Clock()
        leadership = Leadership("me", LeaseTimings(), clock)
        leadership.renewed(clock.now)
        reconciler, kube = with_one_contact(leadership)
        clock.now += LeaseTimings().renew_deadline  # the pass runs past the deadline
        await reconciler.reconcile_once()
        assert kube.patches == []
        clock.now = 200.0
        leadership.renewed(clock.now)
        await reconciler.reconcile_once()
        assert len(kube.patches) == 1

    asyncio.run(scenario())


class SlowSlotKube(RecordingKube):
    """Every write first waits for a connection slot (``slot``), as Kube.patch_status."""

    def __init__(self) -> None:
        super().__init__()
        self.slot = asyncio.Event()
        self.waiting = asyncio.Event()

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any], *,
                           budget: Callable[[], float] | None = None) -> bool:
        self.waiting.set()
        await self.slot.wait()
        return await super().patch_status(ref, patch, budget=budget)


def test_a_write_that_gets_its_slot_after_the_renew_deadline_is_not_sent_and_stays_dirty() -> None:
    async def scenario() -> None:
        clock = Clock()
        leadership = Leadership("me", LeaseTimings(), clock)
        leadership.renewed(clock.now)
        kube, store = SlowSlotKube(), Store(SETTINGS)
        reconciler = Reconciler(store, SETTINGS, kube, leadership)  # type: ignore[arg-type]
        store.listen(reconciler.on_change)
        for kind in KINDS:
            store.mark_listed(kind)
        store.put("Contact", body("alice", "alice@example.com"))
        ref = ObjectRef("Contact", "a", "alice")
        reconciler._dirty.clear()

        passing = asyncio.create_task(reconciler.reconcile_once())
        await asyncio.wait_for(kube.waiting.wait(), 5)
        clock.now += LeaseTimings().renew_deadline  # still waiting for a slot
        kube.slot.set()
        await passing
        assert kube.patches == []
        assert reconciler._dirty_refs == {ref} and reconciler._dirty.is_set()

        leadership.renewed(clock.now)  # leading again: the ref is written after all
        await reconciler.reconcile_once()
        assert [r for r, _ in kube.patches] == [ref]

    asyncio.run(scenario())
