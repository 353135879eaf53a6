"""The reconcile loop's bookkeeping, with the API calls replaced by a recorder."""

from __future__ import annotations

import asyncio
from typing import Any

from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import ObjectRef
from alert_contacts.domain.validation import validate_contact
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import Store
from alert_contacts.settings import Settings

SETTINGS = Settings()


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[tuple[ObjectRef, dict[str, Any]]] = []
        self.events: list[tuple[ObjectRef, str]] = []

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> bool:
        self.patches.append((ref, patch))
        return True

    async def post_event(self, ref: ObjectRef, uid: str, type_: str, reason: str,
                         message: str) -> None:
        self.events.append((ref, reason))


def contact(status: dict[str, Any] | None = None) -> ObjectRecord:
    spec = {"email": "alice@example.com"}
    return record_of("Contact", {
        "metadata": {"name": "alice", "namespace": "a", "uid": "u1", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec, "status": status or {},
    }, validate_contact(spec, SETTINGS))


def test_a_write_is_not_repeated_until_the_watch_shows_something_else() -> None:
    kube = RecordingKube()
    store = Store(SETTINGS)
    store.contacts[contact().ref] = contact()
    reconciler = Reconciler(store, SETTINGS, kube)  # type: ignore[arg-type]

    async def passes() -> None:
        await reconciler.reconcile_once()
        assert len(kube.patches) == 1 and len(kube.events) == 1
        written = kube.patches[0][1]["status"]

        await reconciler.reconcile_once()  # the watch has not echoed the write yet
        assert len(kube.patches) == 1 and len(kube.events) == 1

        store.contacts[contact().ref] = contact({"conditions": [
            {"type": "Ready", "status": "False", "reason": "Tampered"}]})
        await reconciler.reconcile_once()  # someone else wrote status: put it right
        assert len(kube.patches) == 2

        store.contacts[contact().ref] = contact(written)
        await reconciler.reconcile_once()  # the echo of our write: nothing to do
        assert len(kube.patches) == 2
        assert reconciler._in_flight == {}

    asyncio.run(passes())


def test_store_changes_wake_the_reconciler_and_secrets_only_where_bots_live() -> None:
    store = Store(SETTINGS)
    reconciler = Reconciler(store, SETTINGS, RecordingKube())  # type: ignore[arg-type]
    store.listen(reconciler.on_change)
    secret = {"metadata": {"name": "hook", "namespace": "b"}, "type": "Opaque",
              "data": {"url": "aHR0cHM6Ly94"}}

    store.put("Secret", secret)  # no bot in namespace b: nothing to recompute
    assert not reconciler._dirty.is_set()
    store.put("DingTalkBot", {"metadata": {"name": "bot", "namespace": "b", "uid": "u2"},
                              "spec": {"webhook": {"secretRef": {"name": "hook", "key": "url"}}}})
    assert reconciler._dirty.is_set()
    reconciler._dirty.clear()
    store.delete("Secret", secret)  # a bot there now depends on it
    assert reconciler._dirty.is_set()
