"""The operator's Prometheus endpoint reports objects, quota, admission and reconcile time."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    Cluster,
    Operator,
    condition,
    free_port,
    running_operator,
    wait_for_condition,
    wait_until,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def ready_reasons(cluster: Cluster, kind: str) -> Mapping[str, int]:
    """What the cluster says, to compare the gauges with (the cluster holds only this
    test's objects, but the gauges count cluster-wide, so count the same way)."""
    counts: dict[str, int] = {}
    for obj in cluster.list(kind):
        ready = condition(obj, "Ready")
        if ready is not None:
            counts[ready["reason"]] = counts.get(ready["reason"], 0) + 1
    return counts


def refused(create: Callable[[], object]) -> int:
    """The HTTP status of the admission refusal ``create`` runs into."""
    with pytest.raises(ApiException) as error:
        create()
    return int(error.value.status)


def test_metrics_endpoint(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    # Only one operator may run against the cluster: the session's one (metrics
    # off) steps aside for one serving metrics, and comes back afterwards.
    operator.stop()
    try:
        port = free_port()
        with running_operator(cluster, tmp_path / "operator.log",
                              args=[f"--metrics-port={port}", "--quota=7"]):
            before = scrape(port)

            cluster.create("Contact", namespace, "alice", {"email": f"alice@{namespace}.example"})
            cluster.create("DingTalkBot", namespace, "robot",
                           {"webhook": {"secretRef": {"name": "absent", "key": "url"}}})
            cluster.create("ContactGroup", namespace, "sre", {"contacts": ["alice"]})
            wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
            wait_for_condition(cluster, "DingTalkBot", namespace, "robot", "Ready", "False",
                               reason="SecretNotFound")
            wait_for_condition(cluster, "ContactGroup", namespace, "sre", "Ready", "True")
            assert refused(lambda: cluster.create(
                "Contact", namespace, "alice2", {"email": f"ALICE@{namespace}.example"})) == 409
            assert refused(lambda: cluster.create(
                "Contact", namespace, "broken", {"email": "broken@@example.com"})) == 422

            contacts = ready_reasons(cluster, "Contact")
            bots = ready_reasons(cluster, "DingTalkBot")
            groups = ready_reasons(cluster, "ContactGroup")
            expected_objects = {
                ("Contact", "Accepted"): contacts.get("Accepted", 0),
                ("DingTalkBot", "SecretNotFound"): bots.get("SecretNotFound", 0),
                ("ContactGroup", "Accepted"): groups.get("Accepted", 0),
            }
            assert all(count >= 1 for count in expected_objects.values())

            def settled() -> Samples | None:
                # Gauges follow the reconcile pass after the last status write.
                samples = scrape(port)
                agree = all(
                    value(samples, "alert_contacts_objects", kind=kind, reason=reason) == count
                    for (kind, reason), count in expected_objects.items()
                )
                return samples if agree else None

            after = wait_until("the object gauges to match the cluster", settled, timeout=15)

            assert value(after, "alert_contacts_quota_limit") == 7
            in_quota = sum(1 for o in cluster.list("Contact") + cluster.list("DingTalkBot")
                           if (condition(o, "WithinQuota") or {}).get("status") == "True")
            assert value(after, "alert_contacts_quota_used") == in_quota >= 1

            def admitted(kind: str, result: str) -> float:
                name = "alert_contacts_admission_decisions_total"
                return value(after, name, kind=kind, result=result) - value(
                    before, name, kind=kind, result=result)

            assert admitted("Contact", "Allowed") == 1
            assert admitted("DingTalkBot", "Allowed") == 1  # admitted, waits for its Secret
            assert admitted("ContactGroup", "Allowed") == 1
            assert admitted("Contact", "DuplicateEmail") == 1
            assert admitted("Contact", "InvalidSpec") == 1

            passes = "alert_contacts_reconcile_duration_seconds_count"
            assert value(after, passes) > value(before, passes)
            assert value(after, "alert_contacts_reconcile_duration_seconds_sum") > 0
    finally:
        operator.start()
