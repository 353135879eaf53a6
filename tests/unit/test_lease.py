"""Leader election: the pure decisions, and the elector against an in-memory Lease API."""

from __future__ import annotations

import asyncio
import copy
import datetime
import math
from typing import Any

import pytest

from alert_contacts.runtime.lease import (
    LeaderElector,
    Leadership,
    LeaseConfig,
    LeaseConflict,
    LeaseRecord,
    LeaseTimings,
    Predecessor,
    claim_spec,
    default_identity,
    held_by_another,
    may_write,
    parse_lease,
    predecessor,
    release_spec,
    renewed_ago,
)
from alert_contacts.runtime.options import parse

TIMINGS = LeaseTimings()  # 15 s lease, 10 s renew deadline, 2 s retry
WALL = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def record(holder: str, duration: float = 15, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, duration, "2026-01-01T11:00:00.000000Z",
                       "2026-01-01T11:59:59.000000Z", transitions, "7")


# ------------------------------------------------------------------ pure decisions


def test_a_free_released_or_own_lease_is_not_held_by_another() -> None:
    assert not held_by_another(record(""), "me", observed_at=100, now=100)
    assert not held_by_another(record("me"), "me", observed_at=100, now=100)


def test_anothers_lease_is_held_until_its_duration_has_passed_on_our_clock() -> None:
    theirs = record("them", duration=15)
    assert held_by_another(theirs, "me", observed_at=100, now=100)
    assert held_by_another(theirs, "me", observed_at=100, now=114.9)
    assert not held_by_another(theirs, "me", observed_at=100, now=115)


def test_a_leader_writes_only_within_the_renew_deadline() -> None:
    assert not may_write(None, now=0, timings=TIMINGS)
    assert may_write(100, now=109.9, timings=TIMINGS)
    assert not may_write(100, now=110, timings=TIMINGS)


def test_the_write_budget_is_the_time_left_before_the_renew_deadline() -> None:
    async def scenario() -> None:
        now = [100.0]
        leadership = Leadership("me", TIMINGS, lambda: now[0])
        assert leadership.write_budget() == 0  # never renewed
        leadership.renewed(now[0] - 1)  # a renewal that started a second ago
        assert leadership.write_budget() == 9
        now[0] += 9
        assert leadership.write_budget() == 0 and not leadership.is_leader()
        now[0] += 5
        assert leadership.write_budget() == 0
        assert Leadership.always("me").write_budget() == math.inf

    asyncio.run(scenario())


def test_fencing_stops_writes_before_anyone_else_may_acquire() -> None:
    # The leader's renewal starts at t; a rival observes the renewed record no
    # earlier than t. The leader's last write time is before the rival's first.
    t = 100.0
    last_write = t + TIMINGS.renew_deadline
    first_rival = t + TIMINGS.lease_duration
    assert not may_write(t, last_write, TIMINGS)
    assert not held_by_another(record("leader"), "rival", observed_at=t, now=first_rival)
    assert first_rival - last_write == 5


@pytest.mark.parametrize(("retry", "renew", "lease"), [(2, 15, 15), (10, 10, 15), (0, 5, 15)])
def test_timings_must_leave_a_fencing_margin(retry: float, renew: float, lease: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseTimings(lease, renew, retry)


def test_claiming_anothers_lease_counts_a_transition_and_restarts_acquire_time() -> None:
    spec = claim_spec(record("them", transitions=3), "me", WALL, TIMINGS)
    assert spec == {
        "holderIdentity": "me", "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T12:00:00.000000Z", "renewTime": "2026-01-01T12:00:00.000000Z",
        "leaseTransitions": 4,
    }


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    spec = claim_spec(record("me", transitions=3), "me", WALL, TIMINGS)
    assert spec["acquireTime"] == "2026-01-01T11:00:00.000000Z"
    assert spec["renewTime"] == "2026-01-01T12:00:00.000000Z"
    assert spec["leaseTransitions"] == 3


def test_a_new_lease_starts_at_zero_transitions() -> None:
    assert claim_spec(None, "me", WALL, TIMINGS)["leaseTransitions"] == 0


def test_release_leaves_no_holder_and_a_short_duration() -> None:
    spec = release_spec(record("me", transitions=2), WALL)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 2


def test_parse_lease_reads_an_api_object() -> None:
    parsed = parse_lease({"metadata": {"resourceVersion": "12", "annotations": {"a/b": "c"}},
                          "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}})
    assert (parsed.holder, parsed.duration, parsed.transitions, parsed.resource_version) == (
        "pod-a", 15.0, 0, "12")
    assert parsed.annotations == {"a/b": "c"}
    assert parse_lease({"metadata": {}}).holder == ""


def test_identity_is_the_pod_name_else_hostname_and_pid() -> None:
    assert default_identity({"POD_NAME": "aco-7d9f-abcde"}) == "aco-7d9f-abcde"
    assert default_identity({}).rsplit("_", 1)[1].isdigit()


def test_lease_options() -> None:
    lease = parse([], {"POD_NAME": "p1", "POD_NAMESPACE": "ops"}).lease
    assert (lease.enabled, lease.namespace, lease.name, lease.identity) == (
        True, "ops", "alert-contacts-operator", "p1")
    assert lease.timings == LeaseTimings(15, 10, 2)
    custom = parse(["--lease-duration=6", "--lease-renew-deadline=4", "--lease-retry-period=1",
                    "--lease-namespace=x", "--lease-name=n", "--lease-identity=i"],
                   {"ALERT_CONTACTS_LEADER_ELECTION": "false"}).lease
    assert custom == LeaseConfig(False, "x", "n", "i", LeaseTimings(6, 4, 1))


@pytest.mark.parametrize(("argv", "named"), [
    (["--lease-duration=soon"], "--lease-duration 'soon'"),
    (["--lease-renew-deadline=20"], "renew deadline < lease duration"),
    (["--leader-election=maybe"], "--leader-election 'maybe'"),
])
def test_bad_lease_options_are_named(argv: list[str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse(argv, {})


# ---------------------------------------------------- the elector, in memory, fake clock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryLeases:
    """A Lease API with the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionResetError("the API server is unreachable")

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        lease = copy.deepcopy(self.lease)
        await asyncio.sleep(0)  # let concurrent candidates interleave
        return lease

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise LeaseConflict("exists")
        return self._store(body)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflict("stale")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str:
        return str(((self.lease or {}).get("spec") or {}).get("holderIdentity") or "")


class Notes:
    """A handover: writes ``text``, keeps what it was told at each takeover."""

    KEY = "example.dev/notes"

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.took: list[Predecessor] = []

    def annotations(self) -> dict[str, str]:
        return {self.KEY: self.text}

    def took_over(self, predecessor: Predecessor) -> None:
        self.took.append(predecessor)


def elector(api: MemoryLeases, identity: str, clock: Clock,
            handover: Notes | None = None) -> LeaderElector:
    config = LeaseConfig(True, "ops", "aco", identity, TIMINGS)
    return LeaderElector(api, config, Leadership(identity, TIMINGS, clock), clock=clock,
                         wall=lambda: WALL, handover=handover)


def annotations(api: MemoryLeases) -> dict[str, str]:
    assert api.lease is not None
    return dict(api.lease["metadata"].get("annotations") or {})


def test_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert a.leadership.is_leader() and not b.leadership.is_leader()
        assert api.holder == "a" and b.leadership.holder == "a"
        assert a.leadership.term == 1

    asyncio.run(scenario())


def test_a_silent_leader_is_replaced_only_after_the_lease_duration() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        await a.try_acquire_or_renew()
        await b.try_acquire_or_renew()  # b first sees a's record now
        clock.now += 14.9
        assert not a.leadership.is_leader()  # a stopped writing at 10 s already
        assert not await b.try_acquire_or_renew()
        clock.now += 0.1
        assert await b.try_acquire_or_renew()
        assert api.holder == "b" and api.lease is not None
        assert api.lease["spec"]["leaseTransitions"] == 1

    asyncio.run(scenario())


def test_a_renewing_leader_keeps_the_lease() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        for _ in range(20):  # 40 s: well past one lease duration
            assert await a.try_acquire_or_renew()
            assert not await b.try_acquire_or_renew()
            clock.now += TIMINGS.retry_period
        assert a.leadership.is_leader() and a.leadership.term == 1

    asyncio.run(scenario())


def test_concurrent_claims_of_a_free_lease_have_one_winner() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        await elector(api, "seed", clock).try_acquire_or_renew()
        assert api.lease is not None
        api.lease["spec"]["holderIdentity"] = ""  # released
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew(),
                                       return_exceptions=True)
        assert sorted(map(repr, results)) == sorted([repr(True), repr(LeaseConflict("stale"))])
        assert a.leadership.is_leader() != b.leadership.is_leader()

    asyncio.run(scenario())


def test_a_leader_cut_off_from_the_api_stops_at_the_renew_deadline_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a = elector(api, "a", clock)
        await a.try_acquire_or_renew()
        api.down = True
        with pytest.raises(ConnectionResetError):
            await a.try_acquire_or_renew()
        clock.now += 9.9
        assert a.leadership.is_leader()
        clock.now += 0.1
        assert not a.leadership.is_leader()
        a.leadership._fenced()  # what the fence timer runs at the deadline
        api.down = False
        assert await a.try_acquire_or_renew()  # still its own lease: renewed at once
        assert a.leadership.term == 2

    caplog.set_level("INFO", logger="alert_contacts.runtime.lease")
    asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert any("stopped leading" in m and "renew deadline" in m for m in messages), messages
    assert sum("became the leader" in m for m in messages) == 2, messages


def test_a_renewal_slower_than_the_deadline_does_not_count() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a = elector(api, "a", clock)
        original = api.get

        async def slow_get(namespace: str, name: str) -> dict[str, Any] | None:
            clock.now += TIMINGS.renew_deadline
            return await original(namespace, name)

        api.get = slow_get  # type: ignore[method-assign]
        await a.try_acquire_or_renew()
        assert not a.leadership.is_leader()

    asyncio.run(scenario())


def test_wait_returns_once_leading_and_release_hands_over_at_once() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        await a.try_acquire_or_renew()
        await b.try_acquire_or_renew()
        waiter = asyncio.create_task(b.leadership.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        await a.release()
        assert not a.leadership.is_leader() and api.holder == ""
        assert await b.try_acquire_or_renew()  # no need to wait for expiry
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


def test_always_leads_without_election() -> None:
    async def scenario() -> None:
        leadership = Leadership.always("solo")
        assert leadership.is_leader()
        await asyncio.wait_for(leadership.wait(), 1)
        leadership.lost("never")
        assert leadership.is_leader()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- handover


def test_the_handover_is_written_with_every_claim_and_renewal_and_at_release() -> None:
    async def scenario() -> None:
        api, clock, notes = MemoryLeases(), Clock(), Notes("first")
        a = elector(api, "a", clock, notes)
        await a.try_acquire_or_renew()
        assert annotations(api) == {Notes.KEY: "first"}
        assert api.lease is not None
        api.lease["metadata"]["annotations"]["someone.else/note"] = "kept"
        notes.text = "second"
        clock.now += 2
        await a.try_acquire_or_renew()
        assert annotations(api) == {Notes.KEY: "second", "someone.else/note": "kept"}
        notes.text = "last"
        await a.release()
        assert api.holder == "" and annotations(api)[Notes.KEY] == "last"

    asyncio.run(scenario())


def test_the_first_holder_takes_over_from_nobody() -> None:
    async def scenario() -> None:
        api, clock, notes = MemoryLeases(), Clock(), Notes()
        a = elector(api, "a", clock, notes)
        await a.try_acquire_or_renew()
        assert notes.took == [Predecessor(False, {}, clock.now, None)]

    asyncio.run(scenario())


def test_after_a_release_the_successor_takes_over_what_was_written_and_no_unknown() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        a, b_notes = elector(api, "a", clock, Notes("a's")), Notes()
        b = elector(api, "b", clock, b_notes)
        await a.try_acquire_or_renew()
        clock.now += 1
        await a.release()
        clock.now += 1
        seen = clock.now
        assert await b.try_acquire_or_renew()
        assert b_notes.took == [Predecessor(True, {Notes.KEY: "a's"}, seen, None)]

    asyncio.run(scenario())


def test_after_a_crash_the_fenced_seconds_of_the_holder_are_unknown() -> None:
    async def scenario() -> None:
        api, clock, b_notes = MemoryLeases(), Clock(), Notes()
        a, b = elector(api, "a", clock, Notes("a's")), elector(api, "b", clock, b_notes)
        await a.try_acquire_or_renew()
        clock.now += 0.5
        seen = clock.now
        assert not await b.try_acquire_or_renew()  # b first sees a's renewal now
        assert b_notes.took == []
        clock.now += TIMINGS.lease_duration  # a is gone without a word
        assert await b.try_acquire_or_renew()
        # a may have sent until its renew deadline, counted from when b saw its renewal.
        (took,) = b_notes.took
        assert took == Predecessor(True, {Notes.KEY: "a's"}, seen,
                                   seen + TIMINGS.renew_deadline)

    asyncio.run(scenario())


def test_renewals_and_a_lease_regained_by_the_same_process_take_nothing_over() -> None:
    async def scenario() -> None:
        api, clock, notes = MemoryLeases(), Clock(), Notes()
        a = elector(api, "a", clock, notes)
        for _ in range(3):
            await a.try_acquire_or_renew()
            clock.now += TIMINGS.retry_period
        assert len(notes.took) == 1
        clock.now += TIMINGS.renew_deadline  # fenced: not leading any more
        a.leadership._fenced()
        assert await a.try_acquire_or_renew()  # its own Lease: its memory is complete
        assert len(notes.took) == 1

    asyncio.run(scenario())


def test_a_restarted_replica_counts_its_former_self_as_stopped_when_it_started() -> None:
    async def scenario() -> None:
        api, clock = MemoryLeases(), Clock()
        await elector(api, "a", clock, Notes("before")).try_acquire_or_renew()
        clock.now += 3
        restarted_at = clock.now
        notes = Notes()
        again = elector(api, "a", clock, notes)  # the same identity: a container restart
        clock.now += 1
        assert await again.try_acquire_or_renew()  # its own Lease: claimed at once
        (took,) = notes.took
        assert took.acted_until == restarted_at
        assert took.annotations == {Notes.KEY: "before"}

    asyncio.run(scenario())


def test_a_lease_renewed_long_ago_by_the_wall_clock_bounds_the_unknown() -> None:
    held = record("a")
    now, observed = 500.0, 480.0
    fresh = predecessor(held, "b", observed, now, 1.0, TIMINGS, 0.0)
    assert fresh.acted_until == observed + TIMINGS.renew_deadline
    # Renewed 100 s ago by the wall clock (less 2 s for skew between the nodes' clocks).
    old = predecessor(held, "b", observed, now, 100.0, TIMINGS, 0.0)
    assert old.acted_until == now - 98.0 + TIMINGS.renew_deadline
    assert predecessor(held, "b", observed, now, None, TIMINGS, 0.0) == fresh
    released = predecessor(record(""), "b", observed, now, 100.0, TIMINGS, 0.0)
    assert released.acted_until is None and released.found


def test_renewed_ago_reads_the_lease_micro_time() -> None:
    assert renewed_ago(record("a"), WALL) == 1.0  # renewed 11:59:59, now 12:00:00
    for bad in (None, "", "yesterday", "2026-01-01T11:59:59"):  # no zone: not an API time
        assert renewed_ago(LeaseRecord("a", 15, None, bad, 0, "1"), WALL) is None
