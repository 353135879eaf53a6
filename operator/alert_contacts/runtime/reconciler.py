"""The reconcile loop: the authority on uniqueness, quota and group membership.

Every change the store takes in (``runtime.store``: the initial listing, then
each watch event) goes through ``apply(kind, old, new)`` into the decision
engine (``domain.engine``), which returns the refs whose desired status may
have changed; those are marked dirty and woken up. One loop then writes the
difference for the dirty refs only. Bursts coalesce (changes arriving during
a pass cause exactly one more pass), and a pass over objects that already
agree writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from alert_contacts import metrics
from alert_contacts.domain.conditions import now_rfc3339
from alert_contacts.domain.engine import DecisionEngine
from alert_contacts.domain.plan import Plan, StatusWrite
from alert_contacts.domain.tenure import precise_now, tenure_records
from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime.kube import Fenced, Kube, describe_error
from alert_contacts.runtime.lease import Leadership
from alert_contacts.runtime.store import Record, Store
from alert_contacts.settings import Settings

logger = logging.getLogger(__name__)

# Refs planned, then written, between two yields to the event loop (10-20 ms of
# planning, which an admission request may wait for; the writes of one chunk are
# all that a pass holds at a time).
PLAN_CHUNK = 250
# A ref whose planning raised is planned again after this long, doubled for each
# failure in a row up to PLAN_RETRY_MAX: a bug that fails every time must not spin
# the loop (or fill the log), and a passing one is retried soon.
PLAN_RETRY_SECONDS = 1.0
PLAN_RETRY_MAX = 300.0
# Events (a courtesy) are posted beside the pass, not in it: a pass ends once its
# status writes land, so a change that arrives meanwhile waits for no Event. At most
# this many are pending; a write that would add another waits for a slot.
EVENTS_PENDING = 64


class Reconciler:
    def __init__(self, store: Store, settings: Settings, kube: Kube,
                 leadership: Leadership | None = None) -> None:
        self.store = store
        self.settings = settings
        self.kube = kube
        self.engine = DecisionEngine(settings)
        # Only the Lease holder reconciles; the others keep the store and admit.
        # Refs marked dirty meanwhile stay dirty, for the pass after a takeover.
        self.leadership = leadership or Leadership.always("standalone")
        self._dirty = asyncio.Event()
        self._dirty_refs: set[ObjectRef] = set()
        # Writes not yet seen back through the watch: ref -> (status seen, status
        # written, the tenure time it recorded). A pass that runs before the echo
        # arrives, on the same stale status, would write the same status again (with
        # newer times) and post its Event twice. Once the watch shows anything else,
        # the entry no longer matches.
        self._in_flight: dict[ObjectRef, tuple[Mapping[str, Any], dict[str, Any], str]] = {}
        # (kind, Ready reason) of every object, for the metrics.
        self._reason_of: dict[ObjectRef, tuple[str, str]] = {}
        self._reasons: Counter[tuple[str, str]] = Counter()
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}
        # Since when a change has waited for a pass to finish (None: nothing waits),
        # moved on whenever the running pass makes progress (a chunk planned, a write
        # done): the echoes of a long pass's own writes wait for its end, and that is
        # no stall.
        self._waiting_since: float | None = None
        # Writes that did not land (failed or fenced): ref -> (the status it wanted,
        # the tenure time it recorded). Its retry records the same time, so claimants
        # stamped in one pass end in the order that pass decided whichever of their
        # writes lands first (until the retry lands, a rival recorded first does own
        # the key: the retry hands it back). Cleared once a write of the ref lands.
        self._unlanded: dict[ObjectRef, tuple[dict[str, Any], str]] = {}
        # Refs whose planning raised -> failures in a row (for the retry delay).
        self._plan_failures: dict[ObjectRef, int] = {}
        self._event_slots = asyncio.Semaphore(EVENTS_PENDING)
        self._events: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ changes in

    @property
    def synced(self) -> asyncio.Event:
        """Set once the store (and so the engine) holds every kind's initial listing:
        before that, a pass or an admission decision would see a partial cluster."""
        return self.store.synced

    def apply(self, kind: str, old: Record | None, new: Record | None) -> None:
        """The store's listener: one change, fed to the engine; what it touched is
        marked dirty. Quick, never blocks (the pass runs in ``run``)."""
        self.mark(self.engine.apply(kind, old, new))

    on_change = apply

    def mark(self, refs: Iterable[ObjectRef]) -> None:
        self._dirty_refs.update(refs)
        if self._dirty_refs:
            self.poke()

    def poke(self) -> None:
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._dirty.set()

    def stalled_for(self) -> float:
        """Seconds a change has waited for a finished pass while the loop made no
        progress (0 when none waits or when another replica leads, whose passes
        these are)."""
        if self._waiting_since is None or not self.leadership.is_leader():
            return 0.0
        return time.monotonic() - self._waiting_since

    def _progressed(self) -> None:
        if self._waiting_since is not None:
            self._waiting_since = time.monotonic()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            for task in self._events:
                task.cancel()

    async def events_posted(self) -> None:
        """Wait for the Events posted so far (tests; the loop never waits for them)."""
        while self._events:
            await asyncio.gather(*self._events, return_exceptions=True)

    async def _run(self) -> None:
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

    def plan(self, refs: Iterable[ObjectRef]) -> list[StatusWrite]:
        """The writes the given refs need now (skipping ones already in flight).

        A ref whose planning raises is left out, logged and planned again later
        (``PLAN_RETRY_SECONDS``, backing off): one bad object never holds back the others.
        """
        now, since_now = now_rfc3339(), precise_now()
        writes: list[StatusWrite] = []
        for ref in sorted(refs):
            try:
                write = self._plan_one(ref, now, since_now)
            except Exception as e:
                self._retry_planning(ref, e)
                continue
            self._plan_failures.pop(ref, None)
            if write is not None:
                writes.append(write)
        return writes

    def _plan_one(self, ref: ObjectRef, now: str, since_now: str) -> StatusWrite | None:
        record = self.engine.record(ref)
        if record is None:
            self._tally(ref, None)
            self._in_flight.pop(ref, None)
            self._unlanded.pop(ref, None)
            return None
        self._tally(ref, (ref.kind, str(self.engine.reason(ref))))
        flight = self._in_flight.get(ref)
        # Our last write has not come back through the watch yet: plan on the
        # times it recorded, so an unchanged decision is not written twice.
        unechoed = flight if flight is not None and flight[0] == record.status else None
        unlanded = self._unlanded.get(ref) if unechoed is None else None
        if unechoed is not None:
            stamp = unechoed[2]
        elif unlanded is not None:
            stamp = unlanded[1]
        else:
            stamp = since_now
        write = self.engine.write_for(ref, now, stamp)
        if write is not None and unlanded is not None and not tenure_records(write.desired) <= (
            tenure_records(unlanded[0]) | tenure_records(record.status)
        ):
            # A claim (or eligibility) the lost write did not record is new since:
            # an older time would let it overtake claimants recorded in between.
            self._unlanded.pop(ref)
            stamp = since_now
            write = self.engine.write_for(ref, now, stamp)
        if write is None:
            self._in_flight.pop(ref, None)
            self._unlanded.pop(ref, None)
            return None
        if unechoed is not None and unechoed[1] == write.desired:
            return None
        self._in_flight[ref] = (write.seen, write.desired, stamp)
        return write

    def _retry_planning(self, ref: ObjectRef, error: Exception) -> None:
        failures = self._plan_failures.get(ref, 0) + 1
        self._plan_failures[ref] = failures
        delay = min(PLAN_RETRY_SECONDS * 2 ** (failures - 1), PLAN_RETRY_MAX)
        # The type only: a message may quote the object's fields (an email, a mobile).
        logger.warning("planning the status of %s failed (%s); trying again in %gs",
                       ref, type(error).__name__, delay)
        asyncio.get_running_loop().call_later(delay, self.mark, [ref])

    async def reconcile_once(self) -> None:
        """One pass over the dirty refs, planned and written a chunk at a time: a
        first pass over 50,000 unsettled objects holds one chunk's writes (not
        50,000 patches and requests) and lets admission and watch events in
        between chunks (they mark refs dirty again, for the next pass)."""
        started = time.perf_counter()
        refs, self._dirty_refs = sorted(self._dirty_refs), set()
        written = failed = 0
        for start in range(0, len(refs), PLAN_CHUNK):
            if start:
                await asyncio.sleep(0)
            writes: list[StatusWrite] = []
            try:
                writes = self.plan(refs[start:start + PLAN_CHUNK])
                self._progressed()
                results = await asyncio.gather(*(self._write(w) for w in writes),
                                               return_exceptions=True)
            except BaseException:
                # Cancelled (or worse) mid-way: what this chunk planned may not have been
                # written, so it and the rest stay pending, none of it counted in flight.
                for write in writes:
                    self._in_flight.pop(write.ref, None)
                self._dirty_refs.update(refs[start:])
                raise
            written += len(writes)
            for write, result in zip(writes, results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                    self._not_landed(write)
                    self._dirty_refs.add(write.ref)
                    # Not the exception itself: an API error carries the request body.
                    logger.warning("status write for %s failed: %s", write.ref,
                                   describe_error(result))
        in_quota = min(self.engine.in_use(), max(self.settings.quota, 0))
        metrics.observe_pass(Plan([], {}, Counter(self._reasons), in_quota), written,
                             time.perf_counter() - started, self.settings)
        if written:
            logger.debug("reconcile pass: %d status writes in %.3fs",
                         written, time.perf_counter() - started)
        if failed:
            await asyncio.sleep(1)  # back off before retrying the failed writes
            self.poke()

    def _tally(self, ref: ObjectRef, labels: tuple[str, str] | None) -> None:
        before = self._reason_of.pop(ref, None)
        if before is not None:
            self._reasons[before] -= 1
            if not self._reasons[before]:
                del self._reasons[before]
        if labels is not None:
            labels = self._labels.setdefault(labels, labels)  # a few distinct pairs, shared
            self._reason_of[ref] = labels
            self._reasons[labels] += 1

    def _not_landed(self, write: StatusWrite) -> None:
        flight = self._in_flight.pop(write.ref, None)
        if flight is not None:
            self._unlanded[write.ref] = (write.desired, flight[2])

    async def _write(self, write: StatusWrite) -> None:
        # Fencing: patch_status asks the Lease's time left once a connection slot is
        # free, right before sending (the pass or the wait for a slot may have outlasted
        # the renew deadline), and ends the request's timeout with it.
        try:
            written = await self.kube.patch_status(write.ref, write.patch,
                                                   budget=self.leadership.write_budget)
        except Fenced:
            self._not_landed(write)
            self.mark([write.ref])  # the next leader's pass (or ours, once leading again)
            return
        finally:
            self._progressed()  # landed or not, the pass has moved on
        self._unlanded.pop(write.ref, None)
        if not written:
            return
        if write.event is not None:
            type_, reason, _ = write.event
            logger.info("%s: Ready is now %s (%s)", write.ref,
                        "True" if type_ == "Normal" else "False", reason)
            await self._event_slots.acquire()
            task = asyncio.create_task(self._post_event(write.ref, write.uid, write.event))
            self._events.add(task)
            task.add_done_callback(self._events.discard)

    async def _post_event(self, ref: ObjectRef, uid: str, event: tuple[str, str, str]) -> None:
        try:
            await self.kube.post_event(ref, uid, *event)
        finally:
            self._event_slots.release()
