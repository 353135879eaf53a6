"""Faults against two replicas: each test breaks something, then the cluster must agree
with the pure decision again (at most one Ready owner per key, Ready count within
quota, every status equal to what ``plan_status`` wants for the final set).

Replicas are operator processes on the host behind the harness's balancer (the
webhook Service's stand-in, see ``harness.Balancer`` and docs/operations.md),
with a ValidatingWebhookConfiguration of failurePolicy Fail and timeoutSeconds 5.
The session's own operator steps aside for each test.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import signal
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from alert_contacts.domain.types import GROUP, VERSION
from alert_contacts.runtime.leaderlabel import LEADER_LABEL
from tests.e2e.harness import (
    Cluster,
    Operator,
    Replica,
    Replicas,
    condition,
    control_plane_module,
    create_many,
    manifest,
    pod_label,
    ready_reason,
    replicas,
    running_operator,
    unique_email,
    violations,
    wait_converged,
    wait_for_condition,
    wait_until,
)

LEASE_DURATION = 15.0  # the default the replicas run with


@pytest.fixture
def session_operator_aside(operator: Operator) -> Iterator[None]:
    """One set of replicas at a time: the session's operator steps aside meanwhile."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


def outcomes(results: list[dict[str, Any] | ApiException]) -> list[int]:
    return [201 if isinstance(r, dict) else int(r.status) for r in results]


def unexpected(results: list[dict[str, Any] | ApiException]) -> list[str]:
    """Refusals other than 409 (duplicate), with the API server's message."""
    return [f"{r.status} {r.body}" for r in results
            if isinstance(r, ApiException) and r.status != 409]


def burst(namespace: str, prefix: str, emails: list[str], count: int
          ) -> list[tuple[str, str, str, dict[str, Any], dict[str, str]]]:
    """``count`` Contacts whose emails overlap (each email claimed several times,
    in different spellings that normalise the same)."""
    return [
        ("Contact", namespace, f"{prefix}{i:02d}",
         {"email": emails[i % len(emails)].upper() if i % 2 else emails[i % len(emails)]}, {})
        for i in range(count)
    ]


@pytest.mark.timeout(600)
def test_leader_killed_during_a_burst_hands_over_and_converges(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    emails = [unique_email(f"burst{k}") for k in range(12)]
    takeovers: list[float] = []  # kill -> the Lease held by a live replica
    first_writes: list[float] = []  # kill -> a contact created after the kill is Ready
    statuses: list[int] = []
    failures: list[str] = []
    with replicas(cluster, tmp_path) as rs:
        for round_ in range(5):
            killed = rs.leader()
            objects = burst(namespace, f"r{round_}-", emails, 50)
            # The first half lands with the leader alive, the second half right after
            # its SIGKILL, during the handover: admission is the survivor's.
            before = create_many(cluster, objects[:25])
            rs.kill(killed)
            t0 = time.monotonic()
            probe = f"probe{round_}"
            during = create_many(cluster, objects[25:])
            statuses += outcomes(before) + outcomes(during)
            failures += [f"round {round_}, before the kill: {f}" for f in unexpected(before)]
            failures += [f"round {round_}, during the handover: {f}" for f in unexpected(during)]
            cluster.create("Contact", namespace, probe, {"email": unique_email(probe)})
            rs.start(wait=False)  # the Deployment replaces the Pod

            def new_holder(gone: str = killed.identity) -> bool:
                holder = rs.holder()
                return bool(holder) and holder != gone

            wait_until("another replica to take the Lease", new_holder,
                       timeout=LEASE_DURATION + 5, interval=0.1)
            takeovers.append(time.monotonic() - t0)
            wait_for_condition(cluster, "Contact", namespace, probe, "Ready", "True",
                               timeout=LEASE_DURATION + 5 - (time.monotonic() - t0))
            first_writes.append(time.monotonic() - t0)
            for replica in rs.replicas:
                replica.operator.wait_ready()
            wait_converged(cluster, timeout=30)
        assert violations(cluster) == []
        log = "".join(r.operator.tail(5000) for r in rs.replicas)
    print(f"\nhandover after SIGKILL of the leader, {len(takeovers)} kills: Lease taken "
          f"p50 {statistics.median(takeovers):.1f}s max {max(takeovers):.1f}s; first status "
          f"write p50 {statistics.median(first_writes):.1f}s max {max(first_writes):.1f}s")
    # Every create was admitted or refused as a duplicate: no 5xx, no timeout.
    assert failures == [], failures
    assert statuses.count(201) >= len(emails)
    assert max(first_writes) <= LEASE_DURATION + 5
    assert "became the leader" in log


@pytest.mark.timeout(180)
def test_the_leader_label_follows_the_lease_when_the_leader_is_killed(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    # Each replica runs with POD_NAME and POD_NAMESPACE naming a plain Pod object
    # created in the test namespace. No kubelet runs here, so those Pods stay
    # Pending: only their labels matter, which the chart's receiver Service selects.
    with replicas(cluster, tmp_path, pod_namespace=namespace) as rs:
        leader = rs.leader()
        (other,) = [r for r in rs.replicas if r is not leader]

        def label(replica: Replica) -> str | None:
            assert replica.pod is not None
            return pod_label(cluster, namespace, replica.pod, LEADER_LABEL)

        wait_until("the leader's Pod to be labelled, and only it",
                   lambda: (label(leader), label(other)) == ("true", None),
                   timeout=10, interval=0.1)

        rs.kill(leader)
        killed_at = time.monotonic()
        wait_until("the new leader's Pod to be labelled", lambda: label(other) == "true",
                   timeout=LEASE_DURATION + 5, interval=0.1)
        print(f"\nleader label on the new leader's Pod {time.monotonic() - killed_at:.1f}s "
              "after the SIGKILL")
        assert rs.holder() == other.pod
        # A SIGKILLed process cannot remove its label: its Pod keeps it. In a cluster
        # that Pod is not ready while its container is dead, so the receiver Service
        # has no endpoint there; the kubelet restarts the container, or the Pod is
        # deleted (node lost, a rollout).
        assert label(leader) == "true"
        # The restarted container (a new process in the same Pod, the same identity)
        # does not lead, so it removes the stale label.
        rs.start(pod=leader.pod)
        wait_until("the restarted replica to remove its Pod's stale label",
                   lambda: label(leader) is None, timeout=10, interval=0.1)
        assert (rs.holder(), label(other)) == (other.pod, "true")


@pytest.mark.timeout(300)
def test_rolling_restart_while_applying_loses_no_apply(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    applied: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def apply_in_a_loop() -> None:
        i = 0
        while not stop.is_set():
            name = f"apply-{i:03d}"
            result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
                "Contact", namespace, name, {"email": unique_email(name)}))
            (applied if result.returncode == 0 else failures).append(
                name if result.returncode == 0 else result.stderr)
            i += 1

    with replicas(cluster, tmp_path) as rs:
        client = threading.Thread(target=apply_in_a_loop, daemon=True)
        client.start()
        try:
            wait_until("a few applies before the restart", lambda: len(applied) >= 3, timeout=60)
            # As a RollingUpdate with maxSurge 1, maxUnavailable 0: a new Pod is
            # ready before an old one terminates (out of the Service, then SIGTERM).
            for old in list(rs.replicas):
                rs.start()
                rs.terminate(old)
            before = len(applied)
            wait_until("a few applies after the restart", lambda: len(applied) >= before + 3,
                       timeout=60)
        finally:
            stop.set()
            client.join(timeout=60)
        assert failures == [], failures
        for name in applied:
            wait_for_condition(cluster, "Contact", namespace, name, "Ready", "True", timeout=30)
        wait_converged(cluster, timeout=30)
    print(f"\nrolling restart: {len(applied)} applies, {len(failures)} failed")


def test_sigterm_drains_the_webhook_before_it_stops(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    """A request on a kept-alive connection right after SIGTERM is answered, with
    ``Connection: close``; then the process exits cleanly (runtime/shutdown.py),
    and removes the key of its self-signed webhook certificate.

    This is the API server's view of a terminating replica: its connection is
    already open, and kube-proxy keeps it going to this process.
    """
    review = json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "sigterm-drain", "operation": "CREATE", "dryRun": True,
            "kind": {"group": GROUP, "version": VERSION, "kind": "Contact"},
            "resource": {"group": GROUP, "version": VERSION, "resource": "contacts"},
            "namespace": namespace, "name": "drained", "userInfo": {"username": "e2e"},
            "object": json.loads(manifest("Contact", namespace, "drained",
                                          {"email": unique_email("drained")})),
        },
    })

    def admit(conn: http.client.HTTPSConnection, path: str) -> tuple[bool, str | None]:
        conn.request("POST", path, body=review, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        assert resp.status == 200, answer
        return bool(answer["response"]["allowed"]), resp.getheader("Connection")

    def cert_dirs() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("alert-contacts-webhook-*"))

    before = cert_dirs()
    with running_operator(cluster, tmp_path / "operator.log") as op:
        assert op.proc is not None
        assert len(cert_dirs() - before) == 1
        config = json.loads(cluster.kubectl(
            "get", "validatingwebhookconfiguration", op.webhook_config, "-o", "json").stdout)
        client_config = config["webhooks"][0]["clientConfig"]
        url = client_config["url"].removeprefix("https://")
        hostport, _, path = url.partition("/")
        host, _, port = hostport.partition(":")
        context = ssl.create_default_context(
            cadata=base64.b64decode(client_config["caBundle"]).decode())
        conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            assert admit(conn, f"/{path}") == (True, None)  # kept alive

            op.proc.send_signal(signal.SIGTERM)
            wait_until("the operator to start draining", lambda: b"SIGTERM: answering admission"
                       in (tmp_path / "operator.log").read_bytes(), timeout=10, interval=0.02)
            # The same connection, after SIGTERM: answered, then closed by the client.
            assert admit(conn, f"/{path}") == (True, "close")
        finally:
            conn.close()
        assert op.proc.wait(timeout=30) == 0, op.tail()
    assert cert_dirs() - before == set()


def control_plane_outage(
    cluster: Cluster, namespace: str, tmp_path: Path, component: str
) -> None:
    assert cluster.state is not None
    controlplane = control_plane_module()
    emails = [unique_email(f"{component}{k}") for k in range(4)]
    with replicas(cluster, tmp_path) as rs:
        results = create_many(cluster, burst(namespace, "before-", emails, 8))
        assert set(outcomes(results)) <= {201, 409}
        wait_converged(cluster, timeout=30)
        pids = [r.operator.proc.pid for r in rs.replicas if r.operator.proc is not None]

        controlplane.stop_component(cluster.state, component)
        time.sleep(10)  # the outage itself: ten seconds without the component
        controlplane.start_component(cluster.state, component)
        wait_until(f"the API server to serve again after {component} came back",
                   lambda: controlplane.is_ready(cluster.state), timeout=60, interval=0.2)

        # Changes right after the outage, while the replicas' watches are still
        # backing off: a restarted API server answers the old resourceVersion with
        # "410 Gone", and the relisting must drop what was deleted meanwhile.
        results = create_many(cluster, burst(namespace, "after-", emails, 8))
        assert set(outcomes(results)) <= {201, 409}, outcomes(results)
        cluster.delete("Contact", namespace, "before-00")  # an owner goes: promote the next
        wait_converged(cluster, timeout=60)
        alive = [r.operator.proc.pid for r in rs.replicas
                 if r.operator.proc is not None and r.operator.proc.poll() is None]
        assert alive == pids, f"a replica exited:\n{rs.tail()}"
        rs.leader()
        assert violations(cluster) == []


@pytest.mark.timeout(300)
def test_apiserver_down_for_ten_seconds(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    control_plane_outage(cluster, namespace, tmp_path, "apiserver")


@pytest.mark.timeout(300)
def test_etcd_down_for_ten_seconds(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    control_plane_outage(cluster, namespace, tmp_path, "etcd")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def ready_total(cluster: Cluster) -> int:
    """Contacts and bots counted against the quota now (Ready ones)."""
    return sum(1 for kind in ("Contact", "DingTalkBot") for o in cluster.list(kind)
               if (condition(o, "Ready") or {}).get("status") == "True")


@pytest.mark.timeout(300)
def test_deleting_a_namespace_of_owners_promotes_claimants_elsewhere(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    victim = f"{namespace[:50]}-gone"
    cluster.core.create_namespace({"metadata": {"name": victim}})
    quota = ready_total(cluster) + 3  # the victim's three fill it
    shared = [unique_email("shared1"), unique_email("shared2")]
    # Without admission the claimants of owned keys can be created at all; the
    # reconciler decides everything.
    with replicas(cluster, tmp_path, args=[f"--quota={quota}"], webhook=False) as rs:
        rs.leader()
        for i, email in enumerate([*shared, unique_email("third")]):
            cluster.create("Contact", victim, f"owner{i}", {"email": email})
            wait_for_condition(cluster, "Contact", victim, f"owner{i}", "Ready", "True")
        # Ownership goes by creation time (whole seconds), then namespace and name:
        # the claimants must be created in a later second than the owners.
        created = max(parse_time(o["metadata"]["creationTimestamp"])
                      for o in cluster.list("Contact", victim))
        wait_until("the next second", lambda: datetime.datetime.now(datetime.UTC)
                   >= created + datetime.timedelta(seconds=1), timeout=3)
        for i, email in enumerate(shared):
            cluster.create("Contact", namespace, f"claimant{i}", {"email": email.upper()})
        cluster.create("Contact", namespace, "held", {"email": unique_email("held")})
        for name, reason in (("claimant0", "DuplicateEmail"), ("claimant1", "DuplicateEmail"),
                             ("held", "QuotaExceeded")):
            wait_for_condition(cluster, "Contact", namespace, name, "Ready", "False",
                               reason=reason)
        wait_converged(cluster, timeout=30, quota=quota)

        cluster.kubectl("delete", "namespace", victim, "--wait=false")

        def gone() -> bool:
            return victim not in {n.metadata.name for n in cluster.core.list_namespace().items}

        wait_until(f"the namespace controller to delete namespace {victim}", gone, timeout=60,
                   interval=0.1)
        gone_at = time.monotonic()

        def promoted() -> bool:
            return all(ready_reason(cluster.get("Contact", namespace, name)) == ("True", "Accepted")
                       for name in ("claimant0", "claimant1", "held"))

        wait_until("the claimants and the held contact to become Ready", promoted, timeout=5,
                   interval=0.1)
        print(f"\nnamespace deletion: everything promoted {time.monotonic() - gone_at:.2f}s "
              "after the namespace was gone")
        wait_converged(cluster, timeout=10, quota=quota)
        assert violations(cluster, quota) == []


@pytest.mark.timeout(180)
def test_a_status_edited_by_hand_is_put_back(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    with replicas(cluster, tmp_path) as rs:
        leader = rs.leader()
        # The leader says so in its metrics; the other replica says it does not lead.
        wait_until("alert_contacts_leader to be 1 on the leader only", lambda: all(
            r.metric("alert_contacts_leader", identity=r.identity) == (r is leader)
            for r in rs.replicas), timeout=5)
        cluster.create("Contact", namespace, "alice", {"email": unique_email("alice")})
        before = wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
        started = time.monotonic()
        patched = cluster.kubectl(
            "patch", "contact", "alice", "-n", namespace, "--subresource=status",
            "--type=merge", "-o", "json", "-p",
            '{"status": {"conditions": [{"type": "Ready", "status": "False", '
            '"reason": "EditedByHand", "message": "not so", '
            '"lastTransitionTime": "2026-01-01T00:00:00Z"}]}}',
        )
        # The edit was stored (the operator may put it back before we could read it).
        assert (condition(json.loads(patched.stdout), "Ready") or {}).get("reason") == (
            "EditedByHand")
        after = wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True",
                                   timeout=5)
        print(f"\nhand-edited status put back in {time.monotonic() - started:.2f}s")
        assert {c["type"] for c in after["status"]["conditions"]} == {
            c["type"] for c in before["status"]["conditions"]}
        wait_converged(cluster, timeout=10)


@pytest.mark.timeout(180)
def test_webhook_unreachable_refuses_cleanly_then_recovers(
    cluster: Cluster, namespace: str, session_operator_aside: None, tmp_path: Path
) -> None:
    rs = Replicas(cluster, tmp_path)
    try:
        rs.start()
        for replica in list(rs.replicas):  # scaled to 0
            rs.terminate(replica)
        body = manifest("Contact", namespace, "while-down", {"email": unique_email("down")})
        started = time.monotonic()
        result = cluster.kubectl("apply", "-f", "-", input=body, check=False)
        took = time.monotonic() - started
        assert result.returncode != 0
        assert "failed calling webhook" in result.stderr, result.stderr
        assert "contacts.alerting.contacts.dev" in result.stderr, result.stderr
        assert took < 30, f"the refusal took {took:.1f}s"
        assert cluster.get("Contact", namespace, "while-down") is None  # nothing half-written

        rs.start()  # scaled back
        cluster.kubectl("apply", "-f", "-", input=body)
        wait_for_condition(cluster, "Contact", namespace, "while-down", "Ready", "True")
        wait_converged(cluster, timeout=10)
    finally:
        rs.close()
