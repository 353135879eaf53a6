"""The reconcile loop's bookkeeping on the store, with the API calls replaced by a recorder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime import reconciler as reconciler_module
from alert_contacts.runtime.kube import ApiError, Fenced
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import KINDS, Store
from alert_contacts.settings import Settings

SETTINGS = Settings()


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[tuple[ObjectRef, dict[str, Any]]] = []
        self.events: list[tuple[ObjectRef, str]] = []

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any], *,
                           budget: Callable[[], float] | None = None) -> bool:
        if budget is not None and budget() <= 0:  # as Kube.patch_status: fenced, not sent
            raise Fenced(str(ref))
        self.patches.append((ref, patch))
        return True

    async def post_event(self, ref: ObjectRef, uid: str, type_: str, reason: str,
                         message: str) -> None:
        self.events.append((ref, reason))


def body(name: str, email: str, status: dict[str, Any] | None = None,
         created: str = "2026-01-01T00:00:00Z", generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "a", "uid": f"u-{name}", "generation": generation,
                     "creationTimestamp": created},
        "spec": {"email": email}, "status": status or {},
    }


def listening(kube: RecordingKube | None = None) -> tuple[Store, Reconciler, Any]:
    """A reconciler listening to a synced store, writing through ``kube``."""
    kube, store = kube or RecordingKube(), Store(SETTINGS)
    reconciler = Reconciler(store, SETTINGS, kube)  # type: ignore[arg-type]
    store.listen(reconciler.on_change)
    for kind in KINDS:
        store.mark_listed(kind)
    return store, reconciler, kube


def test_a_write_is_not_repeated_until_the_watch_shows_something_else() -> None:
    store, reconciler, kube = listening()
    ref = ObjectRef("Contact", "a", "alice")

    async def passes() -> None:
        store.put("Contact", body("alice", "alice@example.com"))
        await reconciler.reconcile_once()
        await reconciler.events_posted()
        assert len(kube.patches) == 1 and len(kube.events) == 1
        written = kube.patches[0][1]["status"]
        assert [c["key"] for c in written["claims"]] == ["email"]
        assert written["eligibleSince"] == written["claims"][0]["since"]

        reconciler.mark({ref})  # re-planned before the watch echoed the write
        await reconciler.reconcile_once()
        await reconciler.events_posted()
        assert len(kube.patches) == 1 and len(kube.events) == 1

        store.put("Contact", body("alice", "alice@example.com", {
            "conditions": [{"type": "Ready", "status": "False", "reason": "Tampered"}]}))
        await reconciler.reconcile_once()  # someone else wrote status: put it right
        assert len(kube.patches) == 2
        assert kube.patches[1][1]["status"]["claims"] == written["claims"]

        store.put("Contact", body("alice", "alice@example.com", written))
        await reconciler.reconcile_once()  # the echo of our write: nothing to do
        assert len(kube.patches) == 2
        assert reconciler._in_flight == {}

    asyncio.run(passes())


def test_a_pass_writes_only_what_a_change_touched() -> None:
    store, reconciler, kube = listening()

    async def passes() -> None:
        for i in range(50):
            store.put("Contact", body(f"c{i}", f"c{i}@example.com"))
        await reconciler.reconcile_once()
        assert len(kube.patches) == 50
        for ref, patch in list(kube.patches):  # the watch echoes every write
            store.put("Contact", body(ref.name, f"{ref.name}@example.com", patch["status"]))
        await reconciler.reconcile_once()
        assert len(kube.patches) == 50  # zero writes over unchanged objects

        # A new object taking c7's email: only it is written (c7 keeps the email).
        store.put("Contact", body("late", "c7@example.com", created="2026-02-01T00:00:00Z"))
        await reconciler.reconcile_once()
        assert [ref.name for ref, _ in kube.patches[50:]] == ["late"]
        assert kube.patches[50][1]["status"]["conditions"][0]["reason"] == "DuplicateEmail"

        # c7 deleted: its claimant "late" is promoted; nobody else is written.
        store.delete("Contact", body("c7", "c7@example.com"))
        await reconciler.reconcile_once()
        assert [ref.name for ref, _ in kube.patches[51:]] == ["late"]
        assert kube.patches[51][1]["status"]["conditions"][0]["reason"] == "Accepted"

    asyncio.run(passes())


def test_a_secret_wakes_only_the_bots_that_read_it() -> None:
    store, reconciler, _ = listening()
    secret = {"metadata": {"name": "hook", "namespace": "b"}, "type": "Opaque",
              "data": {"url": "aHR0cHM6Ly94"}}

    store.put("Secret", secret)  # nobody reads it: nothing to recompute
    assert not reconciler._dirty.is_set()
    store.put("DingTalkBot", {"metadata": {"name": "bot", "namespace": "b", "uid": "u2"},
                              "spec": {"webhook": {"secretRef": {"name": "hook", "key": "url"}}}})
    assert reconciler._dirty_refs == {ObjectRef("DingTalkBot", "b", "bot")}
    reconciler._dirty_refs.clear()
    reconciler._dirty.clear()
    store.put("Secret", {**secret, "metadata": {"name": "other", "namespace": "b"}})
    assert not reconciler._dirty.is_set()  # same namespace, not read by the bot
    store.delete("Secret", secret)  # the bot reads this one
    assert reconciler._dirty_refs == {ObjectRef("DingTalkBot", "b", "bot")}


def test_an_object_that_fails_to_plan_is_retried_and_holds_back_no_other(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    store, reconciler, kube = listening()
    monkeypatch.setattr(reconciler_module, "PLAN_RETRY_SECONDS", 0.01)
    write_for = reconciler.engine.write_for
    broken = {ObjectRef("Contact", "a", "bob")}

    def failing_write_for(ref: ObjectRef, now: str, since_now: str) -> Any:
        if ref in broken:
            raise ValueError("bob@example.com is not what the planner expected")
        return write_for(ref, now, since_now)

    monkeypatch.setattr(reconciler.engine, "write_for", failing_write_for)

    async def passes() -> None:
        for name in ("alice", "bob", "carol"):
            store.put("Contact", body(name, f"{name}@example.com"))
        with caplog.at_level(logging.WARNING):
            await reconciler.reconcile_once()
        assert sorted(ref.name for ref, _ in kube.patches) == ["alice", "carol"]
        broken.clear()  # whatever it was, it passes now
        reconciler._dirty.clear()
        await asyncio.wait_for(reconciler._dirty.wait(), 1)
        await reconciler.reconcile_once()
        assert [ref.name for ref, _ in kube.patches[2:]] == ["bob"]

    asyncio.run(passes())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Contact a/bob" in warnings[0]
    assert "ValueError" in warnings[0] and "example.com" not in warnings[0]


def test_a_pass_cancelled_while_planning_keeps_every_ref_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, reconciler, kube = listening()
    monkeypatch.setattr(reconciler_module, "PLAN_CHUNK", 1)

    async def passes() -> None:
        for i in range(3):
            store.put("Contact", body(f"c{i}", f"c{i}@example.com"))
        refs = set(reconciler._dirty_refs)
        task = asyncio.create_task(reconciler.reconcile_once())
        await asyncio.sleep(0)  # the first chunk is planned, then it yields
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reconciler._dirty_refs == refs and reconciler._in_flight == {}
        await reconciler.reconcile_once()
        assert len(kube.patches) == 3

    asyncio.run(passes())


def test_a_pass_writes_each_chunk_before_planning_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first pass over 50,000 unsettled objects must not hold 50,000 patches at once.
    store, reconciler, kube = listening()
    monkeypatch.setattr(reconciler_module, "PLAN_CHUNK", 2)
    written_before_planning: list[int] = []
    plan = reconciler.plan

    def recording_plan(refs: Any) -> Any:
        written_before_planning.append(len(kube.patches))
        return plan(refs)

    monkeypatch.setattr(reconciler, "plan", recording_plan)

    async def passes() -> None:
        for i in range(5):
            store.put("Contact", body(f"c{i}", f"c{i}@example.com"))
        await reconciler.reconcile_once()

    asyncio.run(passes())
    assert written_before_planning == [0, 2, 4]
    assert len(kube.patches) == 5


class SlowEventsKube(RecordingKube):
    """Status writes land at once; Events wait until ``posting`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = asyncio.Event()

    async def post_event(self, ref: ObjectRef, uid: str, type_: str, reason: str,
                         message: str) -> None:
        await self.posting.wait()
        await super().post_event(ref, uid, type_, reason, message)


def test_a_pass_ends_when_its_status_writes_land_not_its_events() -> None:
    # Under a burst, the next change waits for the pass before it: not for its Events.
    store, reconciler, kube = listening(SlowEventsKube())

    async def passes() -> None:
        store.put("Contact", body("alice", "alice@example.com"))
        await asyncio.wait_for(reconciler.reconcile_once(), 5)
        assert len(kube.patches) == 1 and kube.events == []
        kube.posting.set()
        await reconciler.events_posted()
        assert kube.events == [(ObjectRef("Contact", "a", "alice"), "Accepted")]

    asyncio.run(passes())


class FailingOnceKube(RecordingKube):
    """The first write of each name in ``fail`` raises ``error`` (a failed or fenced write)."""

    def __init__(self, fail: set[str], error: Exception) -> None:
        super().__init__()
        self.fail, self.error = fail, error

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any], *,
                           budget: Callable[[], float] | None = None) -> bool:
        if ref.name in self.fail:
            self.fail.discard(ref.name)
            raise self.error
        return await super().patch_status(ref, patch, budget=budget)


def failing_once(fail: set[str], error: Exception) -> tuple[Store, Reconciler, FailingOnceKube]:
    store, reconciler, kube = listening(FailingOnceKube(fail, error))
    return store, reconciler, kube


def edited(name: str, email: str, created: str = "2026-01-01T00:00:00Z",
           generation: int = 2) -> dict[str, Any]:
    """An object the operator has recorded before, whose spec changed since: its claim
    is new (pending), to be recorded at the time of the pass that writes it."""
    return body(name, email, {"observedGeneration": 1, "claims": []}, created, generation)


@pytest.mark.parametrize("error", [ApiError(500, "Internal Server Error"), Fenced("late")],
                         ids=["failed", "fenced"])
def test_a_write_that_did_not_land_is_retried_with_the_time_it_recorded(error: Exception) -> None:
    # alice and bob take one email in the same pass: alice (created first) owns it.
    store, reconciler, kube = failing_once({"alice"}, error)
    bob_created = "2026-01-02T00:00:00Z"

    async def passes() -> None:
        store.put("Contact", edited("alice", "same@example.com"))
        store.put("Contact", edited("bob", "same@example.com", bob_created))
        await reconciler.reconcile_once()
        [(_, bobs)] = kube.patches  # only bob's write landed
        assert bobs["status"]["conditions"][0]["reason"] == "DuplicateEmail"
        store.put("Contact", body("bob", "same@example.com", bobs["status"], bob_created, 2))
        await asyncio.sleep(0.01)  # a later pass has a later time
        await reconciler.reconcile_once()
        alices = next(p for r, p in kube.patches if r.name == "alice")
        # The time of the pass that decided, as bob's: alice sorts first once both are
        # recorded, so the email stays hers (a later time would hand it to bob).
        assert alices["status"]["claims"] == bobs["status"]["claims"]
        # Meanwhile bob owned it, until alice's write lands: the watch echoes both.
        bob_now = [p["status"] for r, p in kube.patches if r.name == "bob"][-1]
        assert bob_now["conditions"][0]["reason"] == "Accepted"
        store.put("Contact", body("bob", "same@example.com", bob_now, bob_created, 2))
        store.put("Contact", body("alice", "same@example.com", alices["status"], generation=2))
        await reconciler.reconcile_once()
        latest = {r.name: p["status"] for r, p in kube.patches}
        assert latest["alice"]["conditions"][0]["reason"] == "Accepted"
        assert latest["bob"]["conditions"][0]["reason"] == "DuplicateEmail"
        assert reconciler._unlanded == {}

    asyncio.run(passes())


def test_a_claim_new_since_the_lost_write_gets_a_new_time() -> None:
    store, reconciler, kube = failing_once({"alice"}, ApiError(500, "Internal Server Error"))

    async def passes() -> None:
        store.put("Contact", edited("alice", "alice@example.com"))
        await reconciler.reconcile_once()  # not written: the time it recorded is kept
        [(_, lost_stamp)] = reconciler._unlanded.values()
        store.put("Contact", edited("alice", "other@example.com", generation=3))
        await reconciler.reconcile_once()
        [(_, written)] = kube.patches
        [claim] = written["status"]["claims"]
        assert claim["value"] == "other@example.com"
        assert claim["since"] > lost_stamp  # claimed only now: no older time for it
        assert reconciler._unlanded == {}

    asyncio.run(passes())
