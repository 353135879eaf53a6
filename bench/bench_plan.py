"""How the pure decision scales: one reconcile pass over N objects.

Baseline, measured in the same run: the obvious hand-written ownership check
(for each object, scan every other claimant of its keys: O(n^2)), which is
what ``decide``'s sort-once approach replaces.

    .venv/bin/python -m bench.bench_plan
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from alert_contacts.domain.decisions import decide
from alert_contacts.domain.plan import plan_status
from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import Candidate
from alert_contacts.domain.validation import validate_contact
from alert_contacts.settings import Settings

SETTINGS = Settings(quota=1_000_000)


def contacts(n: int, duplicate_every: int = 10) -> list[ObjectRecord]:
    records = []
    for i in range(n):
        # every tenth contact reuses an earlier email: losers exercise the ordering
        email = f"user{i - 1 if i % duplicate_every == 0 and i else i}@example.com"
        body = {
            "metadata": {"name": f"c{i}", "namespace": f"team-{i % 50}", "uid": f"u{i}",
                         "creationTimestamp": f"2026-01-01T00:{i // 3600 % 60:02d}:{i % 60:02d}Z",
                         "generation": 1},
            "spec": {"email": email, "mobile": f"+86 139 {i // 10000:04d} {i % 10000:04d}"},
        }
        records.append(record_of("Contact", body, validate_contact(body["spec"], SETTINGS)))
    return records


def naive_owners(candidates: list[Candidate]) -> dict[object, bool]:
    unique = {}
    for c in candidates:
        unique[c.ref] = c.verdict.valid and all(
            not (o.verdict.valid and claim in o.verdict.claims and o.order_key < c.order_key)
            for claim in c.verdict.claims for o in candidates
        )
    return unique


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    print(f"{'objects':>8} {'decide':>10} {'naive':>10} {'speedup':>8} {'full pass':>10} "
          f"{'per object':>11} {'idle pass writes':>16}")
    for n in (100, 1000, 2000, 5000):
        records = contacts(n)
        cands = [Candidate(r.ref, r.created, r.verdict) for r in records if r.verdict]
        one_pass = partial(plan_status, records, [], [], {}, SETTINGS, "2026-01-01T00:00:00Z")
        t_decide = best_of(partial(decide, cands, SETTINGS.quota))
        # the baseline is quadratic: past 2,000 objects it takes minutes
        t_naive = best_of(partial(naive_owners, cands), repeat=1) if n <= 2000 else float("nan")
        t_pass = best_of(one_pass)
        # the steady state: statuses already agree, so a pass must write nothing
        plan = one_pass()
        written = {w.ref: w.patch["status"] for w in plan.writes}
        settled = [ObjectRecord(r.ref, r.uid, r.created, r.generation, r.spec,
                                written.get(r.ref, {}), r.verdict) for r in records]
        idle = plan_status(settled, [], [], {}, SETTINGS, "2026-01-01T00:00:01Z")
        print(f"{n:>8} {t_decide * 1e3:>8.1f}ms {t_naive * 1e3:>8.1f}ms "
              f"{t_naive / t_decide:>7.0f}x {t_pass * 1e3:>8.1f}ms "
              f"{t_pass / n * 1e6:>9.1f}us {len(idle.writes):>16}")
    spec = {"email": "Alice@Example.com", "mobile": "+86 138 0013 8000"}
    t_validate = best_of(partial(validate_contact, spec, SETTINGS), repeat=200)
    print(f"validate_contact (run once per change, when indexed): {t_validate * 1e6:.0f}us")


if __name__ == "__main__":
    main()
