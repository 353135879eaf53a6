"""Leader election with a ``coordination.k8s.io/v1`` Lease.

Every replica watches, indexes and serves admission; only the holder of the
Lease reconciles and writes (status today, alert delivery later). Replicas
compete as client-go's ``leaderelection`` package does:

- a candidate takes the Lease when nobody holds it, when it already holds it
  (a restart under the same identity), or when the holder has not renewed it
  for ``leaseDurationSeconds`` *as measured on the candidate's own clock*
  since it last saw the record change (so clock skew between nodes does not
  matter);
- the holder renews every ``retry_period``; every write is an optimistic
  ``replace`` on the resourceVersion it read, so two candidates never both win;
- **fencing**: the holder counts itself leader only until ``renew_deadline``
  after the start of its last successful renewal. ``renew_deadline`` is shorter
  than the lease duration, so a leader cut off from the API server stops writing
  at least ``lease_duration - renew_deadline`` seconds before anyone else may
  take over;
- on a clean shutdown the holder releases the Lease (no holder, 1 s duration),
  so its successor starts at once instead of waiting for expiry;
- **handover**: the holder writes its ``Handover`` annotations (the DingTalk
  robots' recent sends, runtime/delivery.py) with every claim, renewal and
  release, and a new holder is told what its predecessor left there and until
  when that one may still have acted unrecorded (:class:`Predecessor`);
- in a Pod, the holder labels its Pod as the leader (runtime/leaderlabel.py) so
  that the receiver Service routes Alertmanager to it, and removes the label
  when it stops leading, before it releases the Lease.

The interface the rest of the operator uses is :class:`Leadership`:
``await leadership.wait()`` before a pass, ``leadership.write_budget()`` right
before each request is sent (the seconds left before the renew deadline: no
write without time left, and no request outliving it; ``runtime.kube``'s
``patch_status(budget=...)``), and ``leadership.term`` to notice that leadership was lost
and regained in between (work planned in one term must not be written in the
next without being planned again).

The decisions are pure functions of the observed record and the clocks, unit
tested without a cluster; :class:`LeaseApi` is the only thing that talks to the
API server, a small protocol so that its implementation can change freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Gauge

from alert_contacts.runtime.kube import FIELD_MANAGER, ApiError, Kube, describe_error
from alert_contacts.runtime.leaderlabel import KubePodLabelApi, LeaderPodLabel, PodRef

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

LEADER = Gauge(
    "alert_contacts_leader",
    "1 while this replica holds the leader Lease (reconciles and writes), else 0.",
    ["identity"],
)


# ----------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LeaseTimings:
    """client-go's usual timings: 15 s lease, 10 s renew deadline, 2 s retry."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"lease timings {self.retry_period:g}s retry, {self.renew_deadline:g}s renew "
                f"deadline, {self.lease_duration:g}s lease: need 0 < retry period < renew "
                "deadline < lease duration (the gap is the fencing margin)"
            )


@dataclass(frozen=True)
class LeaseConfig:
    enabled: bool  # False: this process is always the leader (a single replica, tests)
    namespace: str
    name: str
    identity: str
    timings: LeaseTimings
    # This replica's Pod, labelled while it leads; None outside a Pod (no label).
    pod: PodRef | None = None


def default_identity(env: Mapping[str, str]) -> str:
    """The pod's name (unique among live pods), else hostname_pid outside a pod."""
    return env.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace(env: Mapping[str, str]) -> str:
    """The operator's own namespace: POD_NAMESPACE, else the service account's, else default."""
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    with contextlib.suppress(OSError), open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
        namespace = f.read().strip()
        if namespace:
            return namespace
    return "default"


# ------------------------------------------------------------- the pure decisions


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease the election reads."""

    holder: str  # "" when released or never held
    duration: float  # leaseDurationSeconds
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> tuple[str, str | None, str]:
        """What changes whenever the holder writes; a change restarts the expiry clock."""
        return self.holder, self.renew_time, self.resource_version


def parse_lease(raw: Mapping[str, Any]) -> LeaseRecord:
    spec = raw.get("spec") or {}
    meta = raw.get("metadata") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
    )


def held_by_another(record: LeaseRecord, identity: str, observed_at: float, now: float) -> bool:
    """Someone else holds the Lease and it has not expired on our clock.

    ``observed_at`` is when we first saw this record's current fingerprint.
    """
    if not record.holder or record.holder == identity:
        return False
    return now < observed_at + record.duration


def may_write(renewed_at: float | None, now: float, timings: LeaseTimings) -> bool:
    """Fencing: a leader writes only within ``renew_deadline`` of the start of its
    last successful renewal (``renewed_at``; None: never renewed)."""
    return renewed_at is not None and now - renewed_at < timings.renew_deadline


@dataclass(frozen=True)
class Predecessor:
    """The Lease as a new holder finds it, for what the previous holder handed over.

    - ``found``: a Lease existed (False on a fresh install: nobody led before);
    - ``annotations``: what the previous holder last wrote in it;
    - ``observed_at``: when that record was first seen, on the new holder's clock
      (it was written no later);
    - ``acted_until``: until when, on the new holder's clock, the previous holder
      may have acted (written, sent) without recording it in the annotations:
      None when it released the Lease (its last record came after its last act)
      or there was none.
    """

    found: bool
    annotations: Mapping[str, str]
    observed_at: float
    acted_until: float | None


# How far apart two nodes' wall clocks may be (NTP keeps them far closer): used only
# to tell that a Lease was last renewed long ago, never to decide who holds it.
CLOCK_SKEW_SECONDS = 2.0


def predecessor(record: LeaseRecord | None, identity: str, observed_at: float, now: float,
                wall_age: float | None, timings: LeaseTimings, started_at: float
                ) -> Predecessor:
    """What a candidate about to claim the Lease takes over.

    The previous holder, fenced, acted at most ``renew_deadline`` after the start of
    its last renewal, which came before the record was observed (or, by the wall
    clock, ``wall_age`` seconds ago, less the skew allowance, when that is earlier).
    When it held the Lease under our identity it was this replica before a restart,
    which stopped before this process ``started_at``.
    """
    if record is None:
        return Predecessor(False, {}, now, None)
    if not record.holder:
        return Predecessor(True, record.annotations, observed_at, None)
    written = observed_at
    if wall_age is not None:
        written = min(written, now - max(0.0, wall_age - CLOCK_SKEW_SECONDS))
    acted_until = written + timings.renew_deadline
    if record.holder == identity:
        acted_until = min(acted_until, started_at)
    return Predecessor(True, record.annotations, observed_at, acted_until)


def renewed_ago(record: LeaseRecord, wall: datetime.datetime) -> float | None:
    """Seconds since the record's renewTime by ``wall`` (None: absent or unreadable)."""
    if not record.renew_time:
        return None
    try:
        renewed = datetime.datetime.fromisoformat(record.renew_time)
    except ValueError:
        return None
    if renewed.tzinfo is None:
        return None
    return (wall - renewed).total_seconds()


def micro_time(wall: datetime.datetime) -> str:
    """A metav1.MicroTime as the API server writes it."""
    return wall.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claim_spec(
    record: LeaseRecord | None, identity: str, wall: datetime.datetime, timings: LeaseTimings
) -> dict[str, Any]:
    """The Lease spec that acquires (or renews, when ours) the Lease for ``identity``."""
    now = micro_time(wall)
    ours = record is not None and record.holder == identity
    transitions = 0 if record is None else record.transitions + (0 if ours else 1)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timings.lease_duration)),
        "acquireTime": record.acquire_time if ours and record is not None else now,
        "renewTime": now,
        "leaseTransitions": transitions,
    }


def release_spec(record: LeaseRecord, wall: datetime.datetime) -> dict[str, Any]:
    """Give the Lease up: no holder, expiring in a second (as client-go's ReleaseOnCancel)."""
    now = micro_time(wall)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": record.transitions,
    }


# ----------------------------------------------------------------- the API access


class LeaseConflict(Exception):
    """Another writer changed or created the Lease first (HTTP 409)."""


class LeaseApi(Protocol):
    """The three calls the election makes; each returns the Lease as a plain dict."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist."""
        ...

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Raises LeaseConflict when it exists already."""
        ...

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Raises LeaseConflict when ``body``'s resourceVersion is no longer current."""
        ...


class KubeLeaseApi:
    """:class:`LeaseApi` on the operator's async API client (``runtime.kube``)."""

    def __init__(self, kube: Kube, timeout: float) -> None:
        self._kube = kube
        self._timeout = timeout

    @staticmethod
    def _path(namespace: str, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{path}/{name}" if name else path

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        query = {"fieldManager": FIELD_MANAGER} if method != "GET" else None
        try:
            result: dict[str, Any] = await self._kube.request(
                method, path, query=query, body=body, request_timeout=self._timeout
            )
        except ApiError as e:
            if e.status == 409:
                raise LeaseConflict(e.reason) from None
            raise
        return result

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", self._path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", self._path(namespace), body)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", self._path(namespace, name), body)


# ------------------------------------------------------------------ the elector


class Leadership:
    """Whether this replica may write now: what writers await and check.

    - ``await wait()`` returns once this replica leads (at once when it does).
    - ``is_leader()`` is true only while the last renewal started less than the
      renew deadline ago: check it right before each write.
    - ``term`` increases with every acquisition: equal before and after a
      step means no other replica can have led in between.
    - ``identity`` is this replica's; ``holder`` the last one seen holding the
      Lease ("" when nobody does or it is unknown yet).
    """

    def __init__(self, identity: str, timings: LeaseTimings, clock: Clock = time.monotonic,
                 always: bool = False) -> None:
        self.identity = identity
        self.timings = timings
        self.term = 1 if always else 0
        self.holder = identity if always else ""
        self._always = always
        self._clock = clock
        self._renewed_at: float | None = None
        self._leading = asyncio.Event()
        if always:
            self._leading.set()
        self._fence: asyncio.TimerHandle | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @classmethod
    def always(cls, identity: str) -> Leadership:
        """Leader election off: this process leads for its whole life (one replica)."""
        return cls(identity, LeaseTimings(), always=True)

    def is_leader(self) -> bool:
        return self._always or may_write(self._renewed_at, self._clock(), self.timings)

    def write_budget(self) -> float:
        """Seconds left to write in: until the renew deadline after the start of the
        last renewal (0 when not leading, infinite without leader election). A write
        is sent only with some left, and its request timeout ends with it."""
        if self._always:
            return math.inf
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.timings.renew_deadline - self._clock())

    async def wait(self) -> None:
        while not self.is_leader():
            self._leading.clear()  # the fence timer may not have run yet
            await self._leading.wait()

    def listen(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` when this replica becomes leader and
        ``listener(False)`` when it stops (including fencing); it must not block."""
        self._listeners.append(listener)

    def _tell(self, leading: bool) -> None:
        for listener in self._listeners:
            listener(leading)

    # -- called by the elector --

    def renewed(self, started_at: float) -> None:
        """A renewal (or acquisition) that started at ``started_at`` succeeded."""
        if not may_write(started_at, self._clock(), self.timings):
            return  # it took longer than the renew deadline: too late to count
        became = not self.is_leader()
        if became:
            self.term += 1
            logger.info("became the leader: %s holds the Lease (term %d)",
                        self.identity, self.term)
        self._renewed_at = started_at
        self.holder = self.identity
        LEADER.labels(self.identity).set(1)
        self._leading.set()
        if self._fence is not None:
            self._fence.cancel()
        remaining = started_at + self.timings.renew_deadline - self._clock()
        self._fence = asyncio.get_running_loop().call_later(max(0.0, remaining), self._fenced)
        if became:
            self._tell(True)

    def _fenced(self) -> None:
        self._fence = None
        if not self.is_leader():
            self.lost(f"the Lease was not renewed within the {self.timings.renew_deadline:g}s "
                      "renew deadline")

    def lost(self, why: str) -> None:
        if self._always:
            return
        was_leading = self._renewed_at is not None
        self._renewed_at = None
        self._leading.clear()
        if self._fence is not None:
            self._fence.cancel()
            self._fence = None
        LEADER.labels(self.identity).set(0)
        if was_leading:
            logger.info("stopped leading: %s; no writes until the Lease is held again", why)
            self._tell(False)

    def observed(self, holder: str) -> None:
        if holder != self.holder and holder != self.identity:
            logger.info("the Lease is held by %s", holder or "nobody")
        self.holder = holder


class Handover(Protocol):
    """State the Lease holder hands to its successor in the Lease's annotations."""

    def annotations(self) -> Mapping[str, str]:
        """What to write now: with every claim, renewal and release."""
        ...

    def took_over(self, predecessor: Predecessor) -> None:
        """About to claim the Lease after ``predecessor`` (not called on renewals, nor
        when this process held the Lease last: its own memory is then complete)."""
        ...


class LeaderElector:
    """Acquires and renews the Lease for a :class:`Leadership` until cancelled."""

    def __init__(
        self, api: LeaseApi, config: LeaseConfig, leadership: Leadership,
        clock: Clock = time.monotonic,
        wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        pod_label: LeaderPodLabel | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.leadership = leadership
        self.pod_label = pod_label
        self.handover = handover
        if pod_label is not None:  # at once on a change (fencing runs between rounds)
            leadership.listen(pod_label.want)
        self._clock = clock
        self._wall = wall
        self._observed: tuple[tuple[str, str | None, str], float] | None = None
        self._record: LeaseRecord | None = None
        self._task: asyncio.Task[None] | None = None
        self._started_at = clock()
        self._held_here = False  # this process has held the Lease

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="leader election")

    async def stop(self) -> None:
        """Stop competing and release the Lease: call after the writers have stopped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.release()

    def _observe(self, record: LeaseRecord) -> float:
        """When the record's current fingerprint was first seen (our clock)."""
        if self._observed is None or self._observed[0] != record.fingerprint:
            self._observed = (record.fingerprint, self._clock())
        self._record = record
        self.leadership.observed(record.holder)
        return self._observed[1]

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when we hold the Lease afterwards."""
        cfg = self.config
        started = self._clock()
        raw = await self.api.get(cfg.namespace, cfg.name)
        if raw is None:
            self._take_over(None, started)
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": self._annotated({"name": cfg.name, "namespace": cfg.namespace}),
                "spec": claim_spec(None, cfg.identity, self._wall(), cfg.timings),
            }
            created = await self.api.create(cfg.namespace, body)
            self._held(parse_lease(created), started)
            return True
        record = parse_lease(raw)
        observed_at = self._observe(record)
        if held_by_another(record, cfg.identity, observed_at, self._clock()):
            return False
        if not self.leadership.is_leader() and not (
            self._held_here and record.holder == cfg.identity
        ):
            self._take_over(record, observed_at)
        raw = {**raw, "metadata": self._annotated(raw.get("metadata") or {}),
               "spec": claim_spec(record, cfg.identity, self._wall(), cfg.timings)}
        replaced = await self.api.replace(cfg.namespace, cfg.name, raw)
        self._held(parse_lease(replaced), started)
        return True

    def _held(self, record: LeaseRecord, started: float) -> None:
        self._observe(record)
        self._held_here = True
        self.leadership.renewed(started)

    def _take_over(self, record: LeaseRecord | None, observed_at: float) -> None:
        if self.handover is None:
            return
        now = self._clock()
        wall_age = None if record is None else renewed_ago(record, self._wall())
        self.handover.took_over(predecessor(record, self.config.identity, observed_at, now,
                                            wall_age, self.config.timings, self._started_at))

    def _annotated(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """``meta`` with the handover's annotations (those of others kept)."""
        if self.handover is None:
            return dict(meta)
        return {**meta, "annotations": {**(meta.get("annotations") or {}),
                                        **self.handover.annotations()}}

    async def run(self) -> None:
        """Compete and renew every retry period, for ever (until cancelled)."""
        logger.info("competing for Lease %s/%s as %s", self.config.namespace, self.config.name,
                    self.config.identity)
        LEADER.labels(self.config.identity).set(0)
        while True:
            await self.compete_once()
            await asyncio.sleep(self.config.timings.retry_period)

    async def compete_once(self) -> None:
        """One round of :meth:`run`: acquire or renew, never raising."""
        try:
            held = await self.try_acquire_or_renew()
        except LeaseConflict:
            held = False  # another writer was first; read again next round
        except Exception as e:  # the API server down or slow: keep trying
            held = False
            logger.warning("could not read or renew Lease %s/%s: %s", self.config.namespace,
                           self.config.name, describe_error(e))
        if not held and self.leadership.is_leader() and self._record is not None and (
            self._record.holder not in ("", self.config.identity)
        ):
            self.leadership.lost(f"the Lease is held by {self._record.holder}")
        if self.pod_label is not None:  # every round, so a failed write is tried again
            self.pod_label.want(self.leadership.is_leader())

    async def release(self) -> None:
        """Give the Lease up when we hold it: call after the writers have stopped.

        The Pod's leader label goes first, so that the receiver Service stops
        routing here before a successor can take the Lease and label its own Pod.
        """
        was_leader = self.leadership.is_leader()
        self.leadership.lost("shutting down")
        if self.pod_label is not None:
            await self.pod_label.close()
        if not was_leader:
            return
        try:
            raw = await self.api.get(self.config.namespace, self.config.name)
            if raw is None or parse_lease(raw).holder != self.config.identity:
                return
            raw = {**raw, "metadata": self._annotated(raw.get("metadata") or {}),
                   "spec": release_spec(parse_lease(raw), self._wall())}
            await self.api.replace(self.config.namespace, self.config.name, raw)
            logger.info("released Lease %s/%s", self.config.namespace, self.config.name)
        except Exception as e:  # the successor then waits for the Lease to expire
            logger.warning("could not release Lease %s/%s: %s", self.config.namespace,
                           self.config.name, describe_error(e))


def leader_election(
    config: LeaseConfig, kube: Kube
) -> tuple[Leadership, LeaderElector | None]:
    """The leadership writers consult, and the elector that keeps it (None when off)."""
    if not config.enabled:
        logger.info("leader election is off: this replica reconciles (run exactly one)")
        return Leadership.always(config.identity), None
    leadership = Leadership(config.identity, config.timings)
    # A call slower than a third of the renew deadline leaves no time to retry.
    timeout = max(1.0, config.timings.renew_deadline / 3)
    pod_label = None
    if config.pod is not None:
        pod_label = LeaderPodLabel(KubePodLabelApi(kube, timeout), config.pod)
    else:
        logger.info("not in a Pod (POD_NAME and POD_NAMESPACE unset): no leader label, "
                    "the receiver answers 503 unless this replica leads")
    return leadership, LeaderElector(KubeLeaseApi(kube, timeout), config, leadership,
                                     pod_label=pod_label)
