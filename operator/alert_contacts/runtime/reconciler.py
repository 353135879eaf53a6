"""The reconcile loop: the authority on uniqueness, quota and group membership.

Every watch event only marks the cluster dirty; one loop then recomputes the
pure ``plan_status`` over everything the indexes hold and writes the
difference. Bursts coalesce (events arriving during a pass cause exactly one
more pass), and a pass over objects that already agree writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from alert_contacts import metrics
from alert_contacts.domain.conditions import now_rfc3339
from alert_contacts.domain.plan import Plan, SecretIndex, StatusWrite, candidates, plan_status
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import Candidate, ObjectRef
from alert_contacts.runtime.kube import Kube, describe_error
from alert_contacts.runtime.lease import Leadership
from alert_contacts.settings import Settings

logger = logging.getLogger(__name__)


def _values(index: Mapping[Any, Iterable[Any]]) -> Iterator[Any]:
    for store in index.values():
        yield from store


@dataclass
class Indices:
    """Live views of kopf's indexes (kopf keeps them current from the watches)."""

    contacts: Mapping[Any, Iterable[ObjectRecord]]
    bots: Mapping[Any, Iterable[ObjectRecord]]
    groups: Mapping[Any, Iterable[ObjectRecord]]
    secrets: Mapping[Any, Iterable[dict[str, str]]]

    def secret_index(self) -> SecretIndex:
        return {key: next(iter(store)) for key, store in self.secrets.items()}

    def candidates(self, settings: Settings, secrets: SecretIndex | None = None) -> list[Candidate]:
        return candidates(
            _values(self.contacts), _values(self.bots),
            self.secret_index() if secrets is None else secrets, settings,
        )

    def claimant_refs(self) -> set[ObjectRef]:
        """Every existing Contact and DingTalkBot, valid or not."""
        return {r.ref for r in (*_values(self.contacts), *_values(self.bots))}

    def plan(self, settings: Settings) -> Plan:
        return plan_status(
            list(_values(self.contacts)), list(_values(self.bots)), list(_values(self.groups)),
            self.secret_index(), settings, now_rfc3339(),
        )


class Reconciler:
    def __init__(self, indices: Indices, settings: Settings, kube: Kube,
                 leadership: Leadership | None = None) -> None:
        self.indices = indices
        self.settings = settings
        self.kube = kube
        # Only the Lease holder reconciles; the others keep indexes and admit.
        self.leadership = leadership or Leadership.always("standalone")
        # Set once kopf's indexes hold the whole initial listing: before that, a
        # pass (or an admission decision) would see a partial cluster.
        self.synced = asyncio.Event()
        self._dirty = asyncio.Event()
        # Writes not yet seen back through the watch: (status seen, status written).
        # A pass that runs before the echo arrives, on the same stale status, would
        # write the same status again (with a newer lastTransitionTime) and post its
        # Event twice. Once the watch shows anything else, the entry no longer matches.
        self._in_flight: dict[str, tuple[Mapping[str, Any], dict[str, Any]]] = {}
        # Since when a change has waited for a pass to finish (None: nothing waits).
        self._waiting_since: float | None = None

    def poke(self) -> None:
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._dirty.set()

    def stalled_for(self) -> float:
        """Seconds a change has waited for a finished pass (0 when none waits or
        when another replica leads, whose passes these are)."""
        if self._waiting_since is None or not self.leadership.is_leader():
            return 0.0
        return time.monotonic() - self._waiting_since

    async def run(self) -> None:
        await self.synced.wait()
        logger.info("indexes are complete; reconciling all contacts, bots and groups")
        while True:
            await self._dirty.wait()
            await self.leadership.wait()
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
        plan = self.indices.plan(self.settings)
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
        if not self.leadership.is_leader():  # fencing: the Lease was lost during the pass
            self.poke()  # the next leader's pass (or ours, once leading again) writes it
            return
        self._in_flight[write.uid] = (write.seen, write.desired)
        if not await self.kube.patch_status(write.ref, write.patch):
            return
        if write.event is not None:
            type_, reason, message = write.event
            await self.kube.post_event(write.ref, write.uid, type_, reason, message)
            logger.info("%s: Ready is now %s (%s)", write.ref,
                        "True" if type_ == "Normal" else "False", reason)
