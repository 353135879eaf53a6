"""Promotion latency: how soon the next claimant becomes Ready after the owner of
an email is deleted, and the first held object after a slot in the quota frees up.

The e2e tests (test_races.py, test_quota.py) check that promotion happens, with
deadlines generous enough for a loaded machine; this prints how fast it is,
against a baseline measured in the same run on the same API server: the time
from a delete until a read of the API no longer finds the object (what any
client must wait for anyway).

    .venv/bin/python -m bench.bench_promotion [--trials 20]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

from tests.e2e.harness import Cluster, Operator, condition, wait_until

from bench.cluster import local_cluster

NS = "bench-promotion"


def ready(cluster: Cluster, name: str) -> bool:
    return (condition(cluster.get("Contact", NS, name), "Ready") or {}).get("status") == "True"


def reason(cluster: Cluster, name: str) -> str | None:
    return (condition(cluster.get("Contact", NS, name), "Ready") or {}).get("reason")


def timed_delete(cluster: Cluster, name: str, done: str) -> float:
    """Seconds from deleting ``name`` until ``done`` is Ready (or, for ``done`` ==
    ``name``, until a read no longer finds it)."""
    started = time.perf_counter()
    cluster.delete("Contact", NS, name)
    if done == name:
        wait_until(f"{name} to be gone", lambda: cluster.get("Contact", NS, name) is None,
                   timeout=30, interval=0.01)
    else:
        wait_until(f"{done} to be promoted", lambda: ready(cluster, done), timeout=30,
                   interval=0.01)
    return time.perf_counter() - started


def summary(values: list[float], baseline: float) -> str:
    p50 = statistics.median(values)
    return (f"p50 {p50 * 1e3:6.0f}ms, max {max(values) * 1e3:6.0f}ms"
            f" ({p50 / baseline:.1f}x the baseline)")


def run(cluster: Cluster, work: Path, trials: int) -> None:
    quota = trials + 1
    operator = Operator(cluster, work / "operator.log", args=["--webhook=none", f"--quota={quota}"])
    operator.start()
    try:
        # Baseline: delete -> a read shows it gone.
        for i in range(trials):
            cluster.create("Contact", NS, f"plain{i}", {"email": f"plain{i}@example.com"})
        wait_until("the plain contacts to be Ready",
                   lambda: all(ready(cluster, f"plain{i}") for i in range(trials)), timeout=120)
        baseline = [timed_delete(cluster, f"plain{i}", f"plain{i}") for i in range(trials)]

        # Uniqueness: a chain of claimants of one email; delete each owner in turn.
        names = [f"claimant{i:02d}" for i in range(trials + 1)]
        for name in names:  # in order: creation time, then name, orders them
            cluster.create("Contact", NS, name, {"email": "chain@example.com"})
        wait_until("the chain to be decided",
                   lambda: ready(cluster, names[0]) and all(
                       reason(cluster, n) == "DuplicateEmail" for n in names[1:]), timeout=120)
        unique = [timed_delete(cluster, owner, successor)
                  for owner, successor in itertools.pairwise(names)]
        cluster.delete("Contact", NS, names[-1])

        # Quota: `quota` contacts fill it, more are held; free one slot at a time.
        filled = [f"q0-slot{i:02d}" for i in range(quota)]
        held = [f"q1-held{i:02d}" for i in range(trials)]
        for name in filled + held:  # in order, as above
            cluster.create("Contact", NS, name, {"email": f"{name}@example.com"})
        wait_until("the quota to be full and the rest held",
                   lambda: all(reason(cluster, n) == "QuotaExceeded" for n in held), timeout=120)
        quota_times = [timed_delete(cluster, slot, next_held)
                       for slot, next_held in zip(filled, held, strict=False)]
    finally:
        operator.stop()

    base = statistics.median(baseline)
    print(f"promotion latency, {trials} trials each (2 cores, kube-apiserver + etcd on loopback)")
    print(f"  delete -> read shows it gone (baseline):   {summary(baseline, base)}")
    print(f"  owner deleted -> next claimant Ready:      {summary(unique, base)}")
    print(f"  slot freed -> first held object Ready:     {summary(quota_times, base)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    trials = parser.parse_args().trials
    with local_cluster("alert-contacts-bench-", NS) as (cluster, work):
        run(cluster, work, trials)


if __name__ == "__main__":
    main()
