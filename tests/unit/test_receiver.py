"""The receiver's routes over a real aiohttp server, with a fake delivery engine behind."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alert_contacts.domain.alerts import Notification
from alert_contacts.domain.delivery import Answer
from alert_contacts.receiver.app import Receiver, ReceiverConfig

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAYLOAD = {
    "version": "4", "status": "firing", "receiver": "team", "groupKey": "{}:{alertname=\"X\"}",
    "groupLabels": {"alertname": "X"}, "commonLabels": {"alertname": "X"},
    "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
    "alerts": [{"status": "firing", "labels": {"alertname": "X", "owner": "alice@example.com"},
                "annotations": {"summary": "disk full"},
                "startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph", "fingerprint": "abc"}],
}


class FakeEngine:
    def __init__(self, status: int = 200, leader: bool = True, delay: float = 0.0) -> None:
        self.status = status
        self.leader = leader
        self.delay = delay
        self.delivered: list[tuple[str, str, Notification]] = []
        self.started = asyncio.Event()  # a delivery is under way
        self.release: asyncio.Event | None = None  # when set: deliveries wait for it

    def is_leader(self) -> bool:
        return self.leader

    def has_group(self, namespace: str, name: str) -> bool:
        return (namespace, name) == ("team", "oncall")

    async def deliver(self, namespace: str, group: str, notification: Notification) -> Answer:
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        await asyncio.sleep(self.delay)
        self.delivered.append((namespace, group, notification))
        return Answer(self.status, "1 delivered" if self.status == 200 else "1 transient")


def run(engine: FakeEngine, scenario: Callable[[TestClient[Any, Any]], Awaitable[None]],
        **config: Any) -> None:
    async def main() -> None:
        receiver = Receiver(ReceiverConfig(**{"token": TOKEN, **config}), engine)
        async with TestClient(TestServer(receiver.app())) as client:
            await scenario(client)
    asyncio.run(main())


def test_a_valid_notification_is_delivered_and_answered_200() -> None:
    engine = FakeEngine()

    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        assert response.status == 200, await response.text()
    run(engine, scenario)
    [(namespace, group, notification)] = engine.delivered
    assert (namespace, group, notification.alerts[0].fingerprint) == ("team", "oncall", "abc")


def test_a_transient_failure_answers_5xx_so_alertmanager_retries() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        assert response.status == 503
    run(FakeEngine(status=503), scenario)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": "Bearer"}])
def test_missing_or_wrong_token_is_401(headers: dict[str, str]) -> None:
    engine = FakeEngine()

    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=headers)
        assert response.status == 401
    run(engine, scenario)
    assert engine.delivered == []


def test_no_token_configured_refuses_everything_and_says_why_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for _ in range(3):
            response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD,
                                         headers={"Authorization": "Bearer "})
            assert response.status == 401
    with caplog.at_level(logging.WARNING):
        run(FakeEngine(), scenario, token=None)
    assert sum("no bearer token is configured" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "not JSON"),
    (json.dumps({**PAYLOAD, "version": "3"}).encode(), "version"),
    (json.dumps({k: v for k, v in PAYLOAD.items() if k != "alerts"}).encode(), "alerts"),
    (b"[]", "JSON object"),
])
def test_malformed_payload_is_400_with_a_message(body: bytes, needle: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", data=body, headers=AUTH)
        assert response.status == 400
        assert needle in await response.text()
    run(FakeEngine(), scenario)


def test_unknown_group_is_404() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/nobody", json=PAYLOAD, headers=AUTH)
        assert response.status == 404
        assert "nobody" in await response.text()
    run(FakeEngine(), scenario)


def test_a_body_over_the_cap_is_413_whether_announced_or_streamed() -> None:
    big = json.dumps({**PAYLOAD, "commonAnnotations": {"x": "y" * 5000}}).encode()

    async def chunks() -> Any:
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", data=big, headers=AUTH)
        assert response.status == 413
        response = await client.post("/v1/alerts/team/oncall", data=chunks(), headers=AUTH)
        assert response.status == 413
    run(FakeEngine(), scenario, max_body_bytes=4096)


def test_saturated_receiver_answers_503_with_retry_after() -> None:
    engine = FakeEngine()

    async def scenario(client: TestClient[Any, Any]) -> None:
        engine.release = asyncio.Event()
        first = asyncio.ensure_future(
            client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH))
        await asyncio.wait_for(engine.started.wait(), timeout=5)  # it holds the one slot
        busy = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        assert busy.status == 503 and busy.headers["Retry-After"]
        # The retry opens a new connection (maybe to another pod), not this keep-alive one.
        assert busy.headers["Connection"].lower() == "close"
        engine.release.set()
        assert (await first).status == 200
    run(engine, scenario, max_concurrency=1)


def test_delivery_past_the_request_timeout_is_503() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        assert response.status == 503
    run(FakeEngine(delay=2.0), scenario, request_timeout=0.2)


def test_a_replica_that_is_not_the_leader_answers_503_and_delivers_nothing() -> None:
    engine = FakeEngine(leader=False)

    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        assert response.status == 503 and response.headers["Retry-After"]
        assert response.headers["Connection"].lower() == "close"  # the retry: a new connection
        health = await client.get("/healthz")
        assert health.status == 200
    run(engine, scenario)
    assert engine.delivered == []


def test_logs_name_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await client.post("/v1/alerts/team/oncall", json=PAYLOAD, headers=AUTH)
        await client.post("/v1/alerts/team/oncall", data=b"{", headers=AUTH)
    with caplog.at_level(logging.DEBUG):
        run(FakeEngine(), scenario)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice@example.com" not in text and TOKEN not in text


def test_a_namespace_token_opens_that_namespace_only_and_the_master_token_all() -> None:
    import hashlib
    import hmac as hmac_module

    from alert_contacts.domain.delivery import namespace_token
    team = hmac_module.new(TOKEN.encode(), b"team", hashlib.sha256).hexdigest()
    assert namespace_token(TOKEN, "team") == team
    engine = FakeEngine()
    engine.has_group = lambda namespace, name: name == "oncall"  # type: ignore[method-assign]

    async def scenario(client: TestClient[Any, Any]) -> None:
        own = {"Authorization": f"Bearer {team}"}
        assert (await client.post("/v1/alerts/team/oncall", json=PAYLOAD,
                                  headers=own)).status == 200
        other = await client.post("/v1/alerts/team-b/oncall", json=PAYLOAD, headers=own)
        assert other.status == 401  # team's token does not open team-b's groups
        assert (await client.post("/v1/alerts/team-b/oncall", json=PAYLOAD,
                                  headers=AUTH)).status == 200
    run(engine, scenario)
