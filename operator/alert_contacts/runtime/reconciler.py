"""The reconcile loop: the authority on uniqueness, quota and group membership.

Every watch event only marks the cluster dirty; one loop then recomputes the
pure ``plan_status`` over everything the store holds and writes the
difference. Bursts coalesce (events arriving during a pass cause exactly one
more pass), and a pass over objects that already agree writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from alert_contacts import metrics
from alert_contacts.domain.plan import StatusWrite
from alert_contacts.runtime.kube import Kube, describe_error
from alert_contacts.runtime.store import SECRET, Record, SecretRecord, Store
from alert_contacts.settings import Settings

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, store: Store, settings: Settings, kube: Kube) -> None:
        self.store = store
        self.settings = settings
        self.kube = kube
        self._dirty = asyncio.Event()
        # Writes not yet seen back through the watch: (status seen, status written).
        # A pass that runs before the echo arrives, on the same stale status, would
        # write the same status again (with a newer lastTransitionTime) and post its
        # Event twice. Once the watch shows anything else, the entry no longer matches.
        self._in_flight: dict[str, tuple[Mapping[str, Any], dict[str, Any]]] = {}
        # Since when a change has waited for a pass to finish (None: nothing waits).
        self._waiting_since: float | None = None

    @property
    def synced(self) -> asyncio.Event:
        """Set once the store holds every kind's initial listing."""
        return self.store.synced

    def on_change(self, kind: str, old: Record | None, new: Record | None) -> None:
        """The store's listener: any change of ours may change some status; a
        Secret only matters where bots live."""
        if kind == SECRET:
            secret = new or old
            assert isinstance(secret, SecretRecord)
            if not self.store.has_bots_in(secret.namespace):
                return
        self.poke()

    def poke(self) -> None:
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._dirty.set()

    def stalled_for(self) -> float:
        """Seconds a change has waited for a finished pass (0 when none waits)."""
        return 0.0 if self._waiting_since is None else time.monotonic() - self._waiting_since

    async def run(self) -> None:
        await self.synced.wait()
        logger.info("indexes are complete; reconciling all contacts, bots and groups")
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            waiting_since, self._waiting_since = self._waiting_since, None
            try:
                await self.reconcile_once()
            except Exception:
                if self._waiting_since is None:
                    self._waiting_since = waiting_since
                # One failed pass must not stop the loop: retry soon, whatever it was.
                logger.exception("reconcile pass failed; retrying")
                await asyncio.sleep(1)
                self.poke()

    async def reconcile_once(self) -> None:
        started = time.perf_counter()
        # A whole-cluster plan takes seconds at tens of thousands of objects: it runs
        # in a worker thread so that probes and admission keep answering meanwhile.
        plan = await asyncio.to_thread(self.store.plan, self.settings)
        writes = [w for w in plan.writes if self._in_flight.get(w.uid) != (w.seen, w.desired)]
        pending = {w.uid for w in plan.writes}
        for uid in list(self._in_flight):
            if uid not in pending:
                del self._in_flight[uid]  # the watch has caught up with our write
        results = await asyncio.gather(*(self._write(w) for w in writes), return_exceptions=True)
        failed = [w for w, r in zip(writes, results, strict=True) if isinstance(r, BaseException)]
        for write, result in zip(writes, results, strict=True):
            if isinstance(result, BaseException):
                self._in_flight.pop(write.uid, None)
                # Not the exception itself: an API error carries the request body.
                logger.warning("status write for %s failed: %s", write.ref, describe_error(result))
        metrics.observe_pass(plan, len(writes), time.perf_counter() - started, self.settings)
        if writes:
            logger.debug("reconcile pass: %d status writes in %.3fs",
                         len(writes), time.perf_counter() - started)
        if failed:
            await asyncio.sleep(1)  # back off before retrying the failed writes
            self.poke()

    async def _write(self, write: StatusWrite) -> None:
        self._in_flight[write.uid] = (write.seen, write.desired)
        if not await self.kube.patch_status(write.ref, write.patch):
            return
        if write.event is not None:
            type_, reason, message = write.event
            await self.kube.post_event(write.ref, write.uid, type_, reason, message)
            logger.info("%s: Ready is now %s (%s)", write.ref,
                        "True" if type_ == "Normal" else "False", reason)
