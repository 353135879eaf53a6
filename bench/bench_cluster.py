"""The operator on a real control plane with thousands of objects.

Baselines are measured in the same run, on the same API server: the time the
API server alone takes to store the objects (no operator, no webhook), and the
latency of a create without the admission webhook.

    .venv/bin/python -m bench.bench_cluster [--objects 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.e2e.harness import Cluster, Operator, condition, wait_until

from bench.cluster import local_cluster

NS = "bench"


def spec(i: int) -> dict[str, Any]:
    return {"email": f"user{i}@example.com", "mobile": f"+86 139 {i // 10000:04d} {i % 10000:04d}"}


def create(cluster: Cluster, name: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    cluster.create("Contact", NS, name, body)
    return time.perf_counter() - started


def all_ready(cluster: Cluster, operator: Operator, n: int) -> bool:
    if operator.proc is not None and operator.proc.poll() is not None:
        raise SystemExit(f"the operator exited:\n{operator.tail()}")
    items = cluster.list("Contact", NS)
    ready = sum(1 for o in items if (condition(o, "Ready") or {}).get("status") == "True")
    return ready >= n


def is_ready(cluster: Cluster, name: str) -> bool:
    return (condition(cluster.get("Contact", NS, name), "Ready") or {}).get("status") == "True"


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    n = parser.parse_args().objects
    with local_cluster("alert-contacts-bench-", NS) as (cluster, work):
        run(cluster, work, n)


def run(cluster: Cluster, work: Path, n: int) -> None:
    quota = [f"--quota={n * 10}"]
    samples = 50

    # Baseline 1: the API server alone stores n contacts (8 concurrent clients).
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        plain_latency = list(pool.map(lambda i: create(cluster, f"c{i}", spec(i)), range(n)))
    t_store = time.perf_counter() - started

    # The operator starts over n contacts without status: every one converges.
    operator = Operator(cluster, work / "operator.log", args=[*quota, "--webhook=none"])
    started = time.perf_counter()
    operator.start(wait=False)
    wait_until(f"{n} contacts Ready", lambda: all_ready(cluster, operator, n),
               timeout=600, interval=0.2)
    t_converge = time.perf_counter() - started

    # A restart over n settled contacts writes nothing.
    before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
              for o in cluster.list("Contact", NS)}
    operator.stop()
    started = time.perf_counter()
    operator.start()
    t_restart = time.perf_counter() - started
    cluster.create("Contact", NS, "after-restart", spec(n + 1))
    wait_until("a pass after the restart", lambda: is_ready(cluster, "after-restart"), 60)
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
             for o in cluster.list("Contact", NS)}
    restart_writes = sum(1 for name, rv in before.items() if after.get(name) != rv)

    # Convergence after deleting an owner, with n objects present.
    promote: list[float] = []
    for trial in range(20):
        cluster.create("Contact", NS, f"loser{trial}", {"email": f"user{trial}@example.com"})
        wait_until("the duplicate to be decided", lambda t=trial: (condition(
            cluster.get("Contact", NS, f"loser{t}"), "Ready") or {}).get("reason")
            == "DuplicateEmail", 30)
        started = time.perf_counter()
        cluster.delete("Contact", NS, f"c{trial}")
        wait_until("the next claimant to be promoted",
                   lambda t=trial: is_ready(cluster, f"loser{t}"), 30, interval=0.01)
        promote.append(time.perf_counter() - started)
    operator.stop()

    # Admission latency: sequential creates with and without the webhook.
    without = [create(cluster, f"plain{i}", spec(100_000 + i)) for i in range(samples)]
    operator = Operator(cluster, work / "operator-webhook.log", args=quota)
    operator.start()
    with_webhook = [create(cluster, f"hooked{i}", spec(200_000 + i)) for i in range(samples)]
    operator.stop()
    cluster.kubectl("delete", "validatingwebhookconfiguration", operator.webhook_config)

    ms = 1e3
    print(f"objects: {n} contacts in one cluster (2 cores, kube-apiserver + etcd on loopback)")
    print(f"  store {n} contacts, API server alone (baseline): {t_store:6.2f}s "
          f"(p50 create {statistics.median(plain_latency) * ms:.1f}ms)")
    print(f"  operator start until all {n} Ready (n status writes): {t_converge:6.2f}s "
          f"({t_converge / t_store:.2f}x the baseline)")
    print(f"  restart over {n} settled contacts: synced in {t_restart:.2f}s, "
          f"{restart_writes} writes")
    print(f"  owner deleted -> next claimant Ready, 20 trials: p50 "
          f"{statistics.median(promote) * ms:.0f}ms, max {max(promote) * ms:.0f}ms")
    print(f"  create latency, {samples} sequential: without webhook p50 "
          f"{statistics.median(without) * ms:.1f}ms p95 {pct(without, 0.95) * ms:.1f}ms; "
          f"with webhook p50 {statistics.median(with_webhook) * ms:.1f}ms "
          f"p95 {pct(with_webhook, 0.95) * ms:.1f}ms "
          f"({statistics.median(with_webhook) / statistics.median(without):.2f}x)")


if __name__ == "__main__":
    main()
