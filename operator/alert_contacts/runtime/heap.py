"""Keep what the operator holds out of the cyclic collector's full collections.

Every replica holds every object in memory (``runtime.store``): about ten
Python objects per Contact, and none of them in a reference cycle. CPython's
cyclic collector, in a full (generation 2) collection, walks every tracked
object with the event loop stopped: 190 ms at 50,000 Contacts, in the middle
of admission requests. The first listing is frozen as it is stored
(``runtime.watch``); what comes later (a first start writing every status,
edits, Secrets) would be walked again and again, in pauses that grow with the
cluster: 30, 72, 107 and 144 ms in turn during a first start of 10,000
Contacts beside 10,000 settled ones.

So after every full collection, everything that survived it is frozen
(``gc.freeze``: moved to the permanent generation), and the next full
collection walks only what was allocated since (at most 30 ms in the same
first start). A full collection leaves no cyclic garbage behind, so none is
frozen; a frozen object that dies later is freed by reference counting as
before. Only a cycle that becomes garbage after it was frozen is never
collected, and the objects the store holds form none.

Written for CPython 3.11's generational collector (the image's and the
development environment's). The pauses are exported as
``alert_contacts_gc_full_collection_seconds``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from alert_contacts import metrics


class FreezeAfterFullCollections:
    """A ``gc.callbacks`` entry; ``install()`` adds one, ``uninstall()`` removes it."""

    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
            return
        # "stop": the collection is over and its lists are consistent; the freeze
        # only moves them to the permanent generation (no collection in a callback).
        gc.freeze()
        metrics.FULL_COLLECTIONS.observe(time.perf_counter() - self.started)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


freeze_after_full_collections = FreezeAfterFullCollections()
