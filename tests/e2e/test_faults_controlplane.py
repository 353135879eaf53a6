"""The local control plane behaves as a real cluster where the fault tests need it:
kube-controller-manager finishes namespace deletion and collects garbage."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from tests.e2e.harness import Cluster, unique_email, wait_until


def exists(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_a_deleted_namespace_goes_away_with_its_contacts(cluster: Cluster) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    cluster.create("Contact", name, "alice", {"email": unique_email("doomed")})
    cluster.kubectl("delete", "namespace", name, "--wait=false")
    wait_until(f"namespace {name} to be gone",
               lambda: not exists(lambda: cluster.core.read_namespace(name)), timeout=60)
    assert cluster.list("Contact", name) == []


def test_dependents_of_a_deleted_owner_are_collected(cluster: Cluster, namespace: str) -> None:
    owner = cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "dependent",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner.metadata.uid}],
    }})
    cluster.core.delete_namespaced_config_map("owner", namespace)
    wait_until("the garbage collector to delete the dependent", lambda: not exists(
        lambda: cluster.core.read_namespaced_config_map("dependent", namespace)), timeout=60)


def test_namespaces_get_a_default_service_account(cluster: Cluster, namespace: str) -> None:
    wait_until("the service-account controller", lambda: exists(
        lambda: cluster.core.read_namespaced_service_account("default", namespace)), timeout=30)
