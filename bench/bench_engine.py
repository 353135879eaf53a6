"""Cost of one watch event, and of one admission decision, as the cluster grows.

For N settled Contacts (statuses already written, quota raised so all fit, and
once with the quota at N/2 so events cross the quota boundary) a stream of
events -- edit to a free email, edit onto a taken email, create, delete, the
echo of a status write -- goes through the decision engine; each event is
timed from ``apply`` to the planned status writes of the refs it touched
(what the reconciler does per event). Baseline, measured in the same run: one
whole-cluster ``plan_status`` pass over the same N (what every event cost
before the engine). Admission: ``admit_claimant`` for a create and an edit.
Events, admission and the whole pass are timed in CPU time of this thread (``thread_time``):
on a shared machine, wall-clock percentiles measure the neighbours.

    .venv/bin/python -m bench.bench_engine
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

from alert_contacts.domain.admission import admit_claimant
from alert_contacts.domain.engine import DecisionEngine
from alert_contacts.domain.plan import plan_status
from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.validation import validate_contact
from alert_contacts.settings import Settings

NOW, SINCE = "2026-02-01T00:00:00Z", "2026-02-01T00:00:00.000000Z"
EVENTS = 400


def body(i: int, email: str, generation: int = 1,
         status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"c{i}", "namespace": f"team-{i % 50}", "uid": f"u{i}",
                     "creationTimestamp": f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
                                          f"{i % 60:02d}Z",
                     "generation": generation},
        "spec": {"email": email},
        "status": status or {},
    }


def record(settings: Settings, i: int, email: str, generation: int = 1,
           status: dict[str, Any] | None = None) -> ObjectRecord:
    spec = {"email": email}
    return record_of("Contact", body(i, email, generation, status),
                     validate_contact(spec, settings))


def settled(n: int, settings: Settings) -> tuple[DecisionEngine, list[ObjectRecord]]:
    """N contacts whose statuses already agree (as after a first pass and its echoes)."""
    records = [record(settings, i, f"user{i}@example.com") for i in range(n)]
    engine = DecisionEngine(settings)
    for r in records:
        engine.apply_object(r)
    agreed = []
    for r in records:
        write = engine.write_for(r.ref, NOW, SINCE)
        status = write.desired if write is not None else dict(r.status)
        agreed.append(ObjectRecord(r.ref, r.uid, r.created, r.generation, r.spec,
                                   {k: v for k, v in status.items() if v is not None},
                                   r.verdict))
    for r in agreed:
        engine.apply_object(r)
    return engine, agreed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n: int, quota: int) -> dict[str, float]:
    settings = Settings(quota=quota)
    engine, records = settled(n, settings)
    # What a long-running operator does once its initial listing is in (see
    # runtime.reconciler): settled objects leave the collector's generations, so
    # a collection does not walk all of them in the middle of an event.
    gc.collect()
    gc.freeze()
    assert all(engine.write_for(r.ref, NOW, SINCE) is None for r in records[:1000])
    rng = random.Random(n)
    times: list[float] = []
    writes: list[int] = []
    next_id = n
    for k in range(EVENTS):
        i = rng.randrange(n)
        current = engine.record(records[i].ref)
        kind = k % 5
        if kind == 0 and current is not None:  # edit to a free email
            new: ObjectRecord | None = record(settings, i, f"moved{k}@example.com",
                                              current.generation + 1, dict(current.status))
        elif kind == 1 and current is not None:  # edit onto a taken email
            new = record(settings, i, f"user{(i + 1) % n}@example.com", current.generation + 1,
                         dict(current.status))
        elif kind == 2:  # create
            new, current = record(settings, next_id, f"new{next_id}@example.com"), None
            next_id += 1
        elif kind == 3 and current is not None:  # delete
            new = None
        else:  # a foreign status edit: its echo
            if current is None:
                continue
            new = ObjectRecord(current.ref, current.uid, current.created, current.generation,
                               current.spec, {}, current.verdict)
        started = time.thread_time()
        if new is None:
            assert current is not None
            touched = engine.remove(current.ref)
        else:
            touched = engine.apply_object(new)
        planned = [w for ref in touched if (w := engine.write_for(ref, NOW, SINCE)) is not None]
        times.append(time.thread_time() - started)
        writes.append(len(planned))
        # the watch echoes the writes
        for w in planned:
            r = engine.record(w.ref)
            assert r is not None
            engine.apply_object(ObjectRecord(r.ref, r.uid, r.created, r.generation, r.spec,
                                             {k: v for k, v in w.desired.items()
                                              if v is not None}, r.verdict))

    admit: list[float] = []
    for k in range(200):
        i = rng.randrange(n)
        ref = records[i].ref
        verdict = validate_contact({"email": f"admit{k}@example.com"}, settings)
        old = records[i].verdict
        started = time.thread_time()
        admit_claimant(verdict, None, ref, engine, quota)  # create
        admit_claimant(verdict, old, ref, engine, quota)  # edit
        admit.append((time.thread_time() - started) / 2)

    started = time.thread_time()
    plan_status(records, [], [], {}, settings, NOW)
    full_pass = time.thread_time() - started
    gc.unfreeze()
    return {
        "p50": statistics.median(times), "p99": percentile(times, 0.99),
        "writes": statistics.mean(writes), "max_writes": max(writes),
        "admit_p50": statistics.median(admit), "admit_p99": percentile(admit, 0.99),
        "full_pass": full_pass,
    }


def main() -> None:
    print(f"{'objects':>8} {'quota':>8} {'event p50':>10} {'event p99':>10} "
          f"{'writes/event':>13} {'max':>4} {'admit p50':>10} {'admit p99':>10} "
          f"{'full pass':>10} {'pass/event':>10}")
    for n in (1_000, 10_000, 50_000):
        for quota in (1_000_000, n // 2):
            r = run(n, quota)
            print(f"{n:>8} {quota:>8} {r['p50'] * 1e6:>8.0f}us {r['p99'] * 1e6:>8.0f}us "
                  f"{r['writes']:>13.2f} {r['max_writes']:>4} {r['admit_p50'] * 1e6:>8.0f}us "
                  f"{r['admit_p99'] * 1e6:>8.0f}us {r['full_pass'] * 1e3:>8.0f}ms "
                  f"{r['full_pass'] / r['p50']:>9.0f}x")


if __name__ == "__main__":
    main()
