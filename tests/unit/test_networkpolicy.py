"""The chart's optional NetworkPolicy: ingress to the webhook, receiver and metrics ports only."""

from __future__ import annotations

from tests.unit.test_chart_files import container, kinds, one, render


def _ingress_ports(policy: dict[str, object]) -> list[int]:
    rules = policy["spec"]["ingress"]  # type: ignore[index]
    return [port["port"] for rule in rules for port in rule["ports"]]


def test_off_by_default() -> None:
    assert "NetworkPolicy" not in kinds(render())


def test_admits_only_the_webhook_receiver_and_metrics_ports() -> None:
    docs = render("networkPolicy.enabled=true")
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    assert _ingress_ports(policy) == [ports["webhook"], 8088, ports["metrics"]]
    assert ports["health"] not in _ingress_ports(policy)
    # It selects the operator's Pod, and only it.
    deployment = one(docs, "Deployment")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    # Without sources given, any source may reach those ports.
    assert all("from" not in rule for rule in policy["spec"]["ingress"])


def test_sources_can_be_narrowed_per_port_and_disabled_parts_are_not_opened() -> None:
    docs = render(
        "networkPolicy.enabled=true", "webhook.enabled=false", "metrics.enabled=false",
        "networkPolicy.receiverPort=9000",
        "networkPolicy.receiverFrom[0].namespaceSelector.matchLabels.team=monitoring",
    )
    (rule,) = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
