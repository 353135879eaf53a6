"""After each full garbage collection, what survived it is frozen; what died is not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from alert_contacts import metrics
from alert_contacts.runtime.heap import FreezeAfterFullCollections


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def freezer() -> Iterator[FreezeAfterFullCollections]:
    gc.unfreeze()
    freezer = FreezeAfterFullCollections()
    freezer.install()
    freezer.install()  # once only
    try:
        yield freezer
    finally:
        freezer.uninstall()
        gc.unfreeze()
    assert freezer not in gc.callbacks


def full_collections() -> float:
    (family,) = metrics.FULL_COLLECTIONS.collect()
    return next(s.value for s in family.samples if s.name.endswith("_count"))


def test_what_survives_a_full_collection_is_frozen_and_garbage_is_not(
    freezer: FreezeAfterFullCollections,
) -> None:
    assert gc.callbacks.count(freezer) == 1
    kept = [{"spec": {"email": f"c{i}@example.com"}} for i in range(1000)]
    cycle = Node()
    cycle.other = Node()
    cycle.other.other = cycle  # garbage once dropped: only the cyclic collector frees it
    dead = weakref.ref(cycle)
    del cycle
    counted = full_collections()

    gc.collect()

    assert dead() is None  # collected, not frozen with the rest
    assert gc.get_freeze_count() >= len(kept)
    assert not any(o is kept[0] for o in gc.get_objects())  # out of every generation
    assert full_collections() == counted + 1


def test_young_collections_freeze_nothing(freezer: FreezeAfterFullCollections) -> None:
    counted = full_collections()
    gc.collect(1)
    assert gc.get_freeze_count() == 0
    assert full_collections() == counted


def test_a_frozen_object_that_dies_is_still_freed(freezer: FreezeAfterFullCollections) -> None:
    kept = Node()
    alive = weakref.ref(kept)
    gc.collect()
    assert not any(o is kept for o in gc.get_objects())
    del kept  # no cycle: reference counting frees it, frozen or not
    assert alive() is None
