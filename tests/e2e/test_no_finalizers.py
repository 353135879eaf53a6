"""No finalizers: the operator never adds one, so deleting never waits for it,
even while it is down."""

from __future__ import annotations

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    unique_email,
    unique_token,
    wait_for_condition,
)


def test_no_object_carries_a_finalizer_and_deletes_need_no_operator(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.create("Contact", namespace, "alice", {"email": unique_email("alice")})
    cluster.create("DingTalkBot", namespace, "bot",
                   {"webhook": {"url": DINGTALK_URL + unique_token()}})
    cluster.create("ContactGroup", namespace, "sre",
                   {"contacts": ["alice"], "dingTalkBots": ["bot"]})
    for kind, name in (("Contact", "alice"), ("DingTalkBot", "bot"), ("ContactGroup", "sre")):
        obj = wait_for_condition(cluster, kind, namespace, name, "Ready", "True")
        assert not obj["metadata"].get("finalizers"), (kind, obj["metadata"])

    operator.stop()
    try:
        # kubectl waits until each object is gone; a finalizer would hold it.
        for plural, name in (("contact", "alice"), ("dingtalkbot", "bot"),
                             ("contactgroup", "sre")):
            result = cluster.kubectl("delete", f"{plural}/{name}", "-n", namespace,
                                     "--timeout=30s", check=False)
            assert result.returncode == 0, result.stderr
        assert cluster.get("Contact", namespace, "alice") is None
        assert cluster.get("DingTalkBot", namespace, "bot") is None
        assert cluster.get("ContactGroup", namespace, "sre") is None
    finally:
        operator.start()

