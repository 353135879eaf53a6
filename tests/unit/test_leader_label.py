"""The leader's Pod label: the pure decision, and the elector labelling an in-memory Pod
on the fake clock of test_lease (becoming leader, fencing, release, failures)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alert_contacts.runtime.kube import ApiError
from alert_contacts.runtime.leaderlabel import (
    LEADER_LABEL,
    LeaderPodLabel,
    PodRef,
    label_write_due,
    leader_label_patch,
    own_pod,
)
from alert_contacts.runtime.lease import LeaderElector, Leadership, LeaseConfig
from tests.unit.test_lease import TIMINGS, WALL, Clock, MemoryLeases

# ------------------------------------------------------------------ pure decisions


def test_the_patch_sets_the_label_while_leading_and_removes_it_otherwise() -> None:
    assert leader_label_patch(True) == {"metadata": {"labels": {LEADER_LABEL: "true"}}}
    assert leader_label_patch(False) == {"metadata": {"labels": {LEADER_LABEL: None}}}


@pytest.mark.parametrize(("wanted", "written", "due"), [
    (None, None, False),  # nothing reported yet
    (True, None, True),  # never written, or the last write failed: the Pod is unknown
    (False, None, True),  # a restarted container removes a label its last run left
    (True, True, False),
    (False, False, False),
    (True, False, True),
    (False, True, True),
])
def test_a_write_is_due_when_the_wanted_state_is_not_known_to_be_on_the_pod(
    wanted: bool | None, written: bool | None, due: bool
) -> None:
    assert label_write_due(wanted, written) is due


def test_only_a_pod_with_name_and_namespace_is_labelled() -> None:
    assert own_pod({"POD_NAME": "aco-1", "POD_NAMESPACE": "ops"}) == PodRef("ops", "aco-1")
    assert own_pod({"POD_NAME": "aco-1"}) is None
    assert own_pod({"POD_NAMESPACE": "ops"}) is None
    assert own_pod({}) is None


# ---------------------------------------------------- the elector, in memory, fake clock


class MemoryPods:
    """Pods' labels under merge patches; ``log`` is shared with the Lease API."""

    def __init__(self, log: list[str]) -> None:
        self.labels: dict[str, dict[str, str]] = {}
        self.log = log
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None  # set: writes wait for it

    async def patch(self, pod: PodRef, patch: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        labels = self.labels.setdefault(pod.name, {})
        for key, value in patch["metadata"]["labels"].items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value
        self.log.append(f"label {pod.name}={patch['metadata']['labels'][LEADER_LABEL]}")

    def leader_label(self, name: str) -> str | None:
        return self.labels.get(name, {}).get(LEADER_LABEL)


class LoggedLeases(MemoryLeases):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = await super().replace(namespace, name, body)
        self.log.append(f"lease holder={body['spec']['holderIdentity']}")
        return result


def labelled_elector(leases: MemoryLeases, pods: MemoryPods, identity: str,
                     clock: Clock) -> LeaderElector:
    pod = PodRef("ops", identity)
    config = LeaseConfig(True, "ops", "aco", identity, TIMINGS, pod=pod)
    return LeaderElector(leases, config, Leadership(identity, TIMINGS, clock), clock=clock,
                         wall=lambda: WALL, pod_label=LeaderPodLabel(pods, pod))


async def settle() -> None:
    """Let the label tasks run their writes (the in-memory API never sleeps)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_the_leader_labels_its_pod_and_the_other_replica_removes_a_stale_label() -> None:
    async def scenario() -> None:
        log: list[str] = []
        leases, pods, clock = LoggedLeases(log), MemoryPods(log), Clock()
        pods.labels["b"] = {LEADER_LABEL: "true"}  # left by b's previous container
        a, b = labelled_elector(leases, pods, "a", clock), labelled_elector(leases, pods, "b",
                                                                            clock)
        await a.compete_once()
        await b.compete_once()
        await settle()
        assert (pods.leader_label("a"), pods.leader_label("b")) == ("true", None)
        for _ in range(5):  # renewals write nothing more
            clock.now += TIMINGS.retry_period
            await a.compete_once()
            await b.compete_once()
        await settle()
        assert log.count("label a=true") == 1 and log.count("label b=None") == 1

    asyncio.run(scenario())


def test_a_fenced_leader_removes_its_label_and_the_successor_labels_its_own() -> None:
    async def scenario() -> None:
        log: list[str] = []
        leases, pods, clock = LoggedLeases(log), MemoryPods(log), Clock()
        a, b = labelled_elector(leases, pods, "a", clock), labelled_elector(leases, pods, "b",
                                                                            clock)
        await a.compete_once()
        await b.compete_once()
        await settle()
        clock.now += TIMINGS.renew_deadline
        a.leadership._fenced()  # what the fence timer runs at the deadline
        await settle()
        assert pods.leader_label("a") is None
        clock.now += TIMINGS.lease_duration - TIMINGS.renew_deadline
        await b.compete_once()  # a's Lease has expired on b's clock
        await settle()
        assert (pods.leader_label("a"), pods.leader_label("b")) == (None, "true")
        await a.compete_once()  # a sees b hold the Lease: still no label
        await settle()
        assert pods.leader_label("a") is None

    asyncio.run(scenario())


def test_a_clean_shutdown_removes_the_label_before_releasing_the_lease() -> None:
    async def scenario() -> None:
        log: list[str] = []
        leases, pods, clock = LoggedLeases(log), MemoryPods(log), Clock()
        a = labelled_elector(leases, pods, "a", clock)
        await a.compete_once()
        await settle()
        log.clear()
        await a.release()
        assert log == ["label a=None", "lease holder="]

    asyncio.run(scenario())


def test_a_failed_write_warns_once_with_status_and_reason_and_is_retried_each_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        log: list[str] = []
        leases, pods, clock = MemoryLeases(), MemoryPods(log), Clock()
        pods.error = ApiError(403, "Forbidden", 'pods "a" is forbidden: user ...')
        a = labelled_elector(leases, pods, "a", clock)
        for _ in range(3):
            await a.compete_once()
            await settle()
            clock.now += TIMINGS.retry_period
        assert a.leadership.is_leader()  # the failures never touch the Lease
        assert pods.leader_label("a") is None
        pods.error = None
        await a.compete_once()  # the next renewal tries again
        await settle()
        assert pods.leader_label("a") == "true"

    caplog.set_level("DEBUG", logger="alert_contacts.runtime.leaderlabel")
    asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"could not set label {LEADER_LABEL} on Pod ops/a: HTTP 403 Forbidden; "
                        "trying again at the next renewal"]
    assert any("set label" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)


def test_a_hanging_write_never_delays_renewal_and_the_latest_wanted_state_wins() -> None:
    async def scenario() -> None:
        log: list[str] = []
        leases, pods, clock = MemoryLeases(), MemoryPods(log), Clock()
        pods.gate = asyncio.Event()  # the Pod API hangs
        a = labelled_elector(leases, pods, "a", clock)
        for _ in range(20):  # 40 s of renewals while the first write hangs
            await asyncio.wait_for(a.compete_once(), 1)
            clock.now += TIMINGS.retry_period
        assert a.leadership.is_leader() and a.leadership.term == 1
        a.leadership.lost("the Lease is held by b")  # then leadership goes, and comes back
        await asyncio.wait_for(a.compete_once(), 1)
        assert a.pod_label is not None and a.pod_label.wanted is True
        pods.gate.set()
        await settle()
        assert log == ["label a=true"]  # the one in flight; nothing stale after it
        a.leadership.lost("the Lease is held by b")
        await settle()
        assert log == ["label a=true", "label a=None"]

    asyncio.run(scenario())
