"""The first slice end to end: schema, admission webhook on 127.0.0.1, Ready status."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from tests.e2e.harness import (
    Cluster,
    Operator,
    condition,
    unique_email,
    unique_mobile,
    wait_for_condition,
)


def test_valid_contact_becomes_ready(cluster: Cluster, operator: Operator, namespace: str) -> None:
    d, e164 = unique_mobile()
    email = unique_email("Alice").replace("@example.com", "@Example.com")
    cluster.create("Contact", namespace, "alice",
                   {"mobile": f"+86 {d[:3]} {d[3:7]} {d[7:]}", "email": email})
    obj = wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["normalized"] == {"mobile": e164, "email": email.lower()}
    assert email != email.lower()  # the normalisation had something to do
    ready = condition(obj, "Ready")
    assert ready is not None and ready["reason"] == "Accepted"
    # kubectl wait understands the condition, as GitOps tools and scripts use it.
    cluster.kubectl("wait", "--for=condition=Ready", "contact/alice", "-n", namespace,
                    "--timeout=10s")


def test_contact_without_mobile_or_email_is_refused_by_the_schema(
    cluster: Cluster, namespace: str
) -> None:
    # No operator needed: the CRD's CEL rule refuses it in the API server itself.
    result = cluster.kubectl("apply", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "alerting.contacts.dev/v1alpha1", "kind": "Contact",
        "metadata": {"name": "nobody", "namespace": namespace},
        "spec": {"displayName": "Nobody"},
    }))
    assert result.returncode != 0
    assert "spec.mobile" in result.stderr and "spec.email" in result.stderr
    assert cluster.get("Contact", namespace, "nobody") is None


def test_webhook_served_on_loopback_refuses_a_malformed_email(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    try:
        cluster.create("Contact", namespace, "bad", {"email": "alice@@example.com"})
    except ApiException as e:
        assert e.status == 422
        message = json.loads(e.body)["message"]
    else:
        raise AssertionError("a malformed email was admitted")
    assert "admission webhook" in message  # refused by our webhook, not the schema
    assert "spec.email" in message and "alice@@example.com" in message
    assert cluster.get("Contact", namespace, "bad") is None
