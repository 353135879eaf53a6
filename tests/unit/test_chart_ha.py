"""The chart runs replicas that stay available through upgrades and drains, elects
one writer with a Lease it may only touch in its own namespace, and sends
Alertmanager to that writer's Pod only."""

from __future__ import annotations

from typing import Any

from alert_contacts.runtime.leaderlabel import LEADER_LABEL, PodRef
from alert_contacts.runtime.lease import LeaseTimings
from alert_contacts.runtime.options import parse
from tests.unit.test_chart_files import NAMESPACE, RELEASE, container, one, render

FULLNAME = f"{RELEASE}-alert-contacts-operator"


def test_two_replicas_roll_without_ever_losing_a_ready_one() -> None:
    spec = one(render(), "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_disruption_budget_keeps_one_replica_and_is_left_out_for_one() -> None:
    docs = render()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"]["minAvailable"] == 1
    selector = one(docs, "Deployment")["spec"]["selector"]
    assert pdb["spec"]["selector"] == selector
    assert not [d for d in render("ha.replicas=1") if d["kind"] == "PodDisruptionBudget"]
    assert not [d for d in render("ha.podDisruptionBudget.enabled=false")
                if d["kind"] == "PodDisruptionBudget"]


def affinity(*sets: str) -> Any:
    return one(render(*sets), "Deployment")["spec"]["template"]["spec"].get("affinity")


def test_replicas_prefer_different_nodes() -> None:
    (term,) = affinity()["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = one(render(), "Deployment")["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": labels}
    assert "requiredDuringSchedulingIgnoredDuringExecution" in affinity(
        "ha.podAntiAffinity=required")["podAntiAffinity"]
    assert affinity("ha.podAntiAffinity=none") is None
    assert affinity("affinity.nodeAffinity.x=y") == {"nodeAffinity": {"x": "y"}}


def test_lease_flags_are_ones_the_operator_accepts() -> None:
    c = container(render("ha.leaderElection.leaseDuration=20",
                         "ha.leaderElection.renewDeadline=12"))
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]
           if "fieldRef" in e.get("valueFrom", {})}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    lease = parse(c["args"], {"POD_NAME": "aco-1", "POD_NAMESPACE": NAMESPACE}).lease
    assert lease.enabled and lease.name == FULLNAME
    assert (lease.namespace, lease.identity) == (NAMESPACE, "aco-1")
    assert lease.timings == LeaseTimings(20, 12, 2)
    # The leader labels the Pod named by the downward API.
    assert lease.pod == PodRef(NAMESPACE, "aco-1")
    off = parse(container(render("ha.leaderElection.enabled=false"))["args"], {}).lease
    assert not off.enabled


def test_lease_rbac_is_its_own_lease_in_the_release_namespace_only() -> None:
    docs = render()
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    granted = {(g, r, v, tuple(rule.get("resourceNames", ())))
               for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {
        ("coordination.k8s.io", "leases", "get", (FULLNAME,)),
        ("coordination.k8s.io", "leases", "update", (FULLNAME,)),
        ("coordination.k8s.io", "leases", "create", ()),
        # The leader labels its own Pod; the Pods' names are not known to the chart.
        ("", "pods", "get", ()),
        ("", "pods", "patch", ()),
    }
    binding = one(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "namespace": NAMESPACE,
                                    "name": one(docs, "ServiceAccount")["metadata"]["name"]}]
    cluster_rules = one(docs, "ClusterRole", FULLNAME)["rules"]
    assert not [r for r in cluster_rules if "coordination.k8s.io" in r["apiGroups"]]
    assert not [r for r in cluster_rules if "pods" in r["resources"]]
    assert not [d for d in render("ha.leaderElection.enabled=false") if d["kind"] == "Role"]


def test_webhook_answers_within_five_seconds_by_default() -> None:
    vwc = one(render(), "ValidatingWebhookConfiguration")
    assert {h["timeoutSeconds"] for h in vwc["webhooks"]} == {5}
    assert {h["failurePolicy"] for h in vwc["webhooks"]} == {"Fail"}



def test_a_terminating_replica_answers_until_its_endpoint_is_gone() -> None:
    assert container(render())["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert "lifecycle" not in container(render("ha.shutdownDelaySeconds=0"))


def test_receiver_service_selects_the_leaders_pod_and_the_other_service_every_replica() -> None:
    docs = render()
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    receiver = one(docs, "Service", f"{FULLNAME}-receiver")
    assert receiver["spec"]["selector"] == {**selector, LEADER_LABEL: "true"}
    assert LEADER_LABEL not in pod_labels  # set by the leader itself, never by the template
    assert [p["name"] for p in receiver["spec"]["ports"]] == ["receiver"]
    webhook_and_metrics = one(docs, "Service", FULLNAME)
    assert webhook_and_metrics["spec"]["selector"] == selector
    assert {p["name"] for p in webhook_and_metrics["spec"]["ports"]} == {"webhook", "metrics"}
    # Without leader election every replica delivers and none is labelled.
    off = one(render("ha.leaderElection.enabled=false"), "Service", f"{FULLNAME}-receiver")
    assert off["spec"]["selector"] == selector


def test_the_grace_period_fits_the_pre_stop_sleep_and_the_shutdown() -> None:
    """Past it the kubelet kills the process before it released the Lease."""
    spec = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 5 + 25
    longer = one(render("ha.shutdownDelaySeconds=10", "ha.shutdownSeconds=40"), "Deployment")
    assert longer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 50
