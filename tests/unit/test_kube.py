"""The async API client against a local HTTP server standing in for the API's wire format."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kubernetes.client
import pytest
from aiohttp import web

from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime import kube as kube_module
from alert_contacts.runtime.kube import (
    FIELD_MANAGER,
    ApiError,
    Client,
    Fenced,
    Kube,
    parse_json,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def with_server(handler: Handler, test: Callable[[Kube], Awaitable[None]]) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}")
        configuration.api_key = {"BearerToken": "Bearer test-token"}
        kube = Kube(Client(configuration))
        try:
            await test(kube)
        finally:
            await kube.close()
            await runner.cleanup()

    asyncio.run(main())


def test_status_is_merge_patched_under_the_operators_field_manager() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path": request.path,
                     "query": dict(request.query), "type": request.content_type,
                     "auth": request.headers.get("Authorization"),
                     "agent": request.headers.get("User-Agent"),
                     "body": await request.json()})
        if "gone" in request.path:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response({"kind": "Contact"})

    async def test(kube: Kube) -> None:
        patch = {"status": {"observedGeneration": 2}}
        assert await kube.patch_status(ObjectRef("Contact", "a", "alice"), patch) is True
        assert await kube.patch_status(ObjectRef("Contact", "a", "gone"), patch) is False

    with_server(handler, test)
    assert seen[0] == {
        "method": "PATCH",
        "path": "/apis/alerting.contacts.dev/v1alpha1/namespaces/a/contacts/alice/status",
        "query": {"fieldManager": FIELD_MANAGER}, "type": "application/merge-patch+json",
        "auth": "Bearer test-token", "agent": "alert-contacts-operator",
        "body": {"status": {"observedGeneration": 2}},
    }


def test_errors_carry_status_reason_and_retry_after_but_log_no_body() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "Status", "code": 429, "message": "storage is (re)initializing"},
            status=429, headers={"Retry-After": "1"},
        )

    async def test(kube: Kube) -> None:
        try:
            await kube.request("GET", "/apis/coordination.k8s.io/v1/namespaces/a/leases/x")
        except ApiError as e:
            assert (e.status, e.message, e.retry_after) == (
                429, "storage is (re)initializing", 1.0)
            assert str(e) == "HTTP 429 Too Many Requests"
        else:
            raise AssertionError("a 429 was taken for success")

    with_server(handler, test)


def test_a_stream_is_read_line_by_line() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.query["watch"] == "true"
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(3):
            await response.write(json.dumps({"type": "ADDED", "n": i}).encode() + b"\n")
        await response.write_eof()
        return response

    async def test(kube: Kube) -> None:
        async with kube.stream("/api/v1/secrets", {"watch": "true"}, read_timeout=5) as lines:
            got = [json.loads(line)["n"] async for line in lines]
        assert got == [0, 1, 2]

    with_server(handler, test)


def test_a_status_write_waiting_for_a_slot_past_its_budget_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kube_module, "WRITES_IN_FLIGHT", 1)
    sent: list[str] = []
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        sent.append(request.path.split("/")[-2])
        arrived.set()
        await answer.wait()
        return web.json_response({"kind": "Contact"})

    async def test(kube: Kube) -> None:
        left = [5.0]  # seconds before the renew deadline, as Leadership.write_budget says
        first = asyncio.create_task(kube.patch_status(ObjectRef("Contact", "a", "slow"), {}))
        await asyncio.wait_for(arrived.wait(), 5)  # it holds the only slot
        fenced = asyncio.create_task(kube.patch_status(
            ObjectRef("Contact", "a", "alice"), {}, budget=lambda: left[0]))
        await asyncio.sleep(0.05)  # it waits for the only slot...
        left[0] = 0.0  # ... until after the renew deadline
        answer.set()
        assert await first is True
        with pytest.raises(Fenced):
            await fenced

    with_server(handler, test)
    assert sent == ["slow"]


def times_out_within_two_seconds(call: Callable[[Kube], Awaitable[Any]]) -> None:
    """``call`` against an API server that never answers raises TimeoutError, soon."""
    answer = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await answer.wait()
        return web.json_response({})

    async def test(kube: Kube) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await call(kube)
        assert time.monotonic() - started < 2  # not REQUEST_TIMEOUT's 30 s read
        answer.set()

    with_server(handler, test)


def test_a_status_writes_timeout_ends_with_its_budget() -> None:
    times_out_within_two_seconds(lambda kube: kube.patch_status(
        ObjectRef("Contact", "a", "alice"), {}, budget=lambda: 0.2))


def test_a_request_timeout_in_seconds_bounds_the_whole_request() -> None:
    # As the Lease calls give it: one number, the whole request's limit.
    times_out_within_two_seconds(lambda kube: kube.request(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/a/leases/x", request_timeout=0.2))


@pytest.mark.parametrize("raw", [
    b'{"items": [{"metadata": {"name": "a", "generation": 9223372036854775807}}]}',
    b'{"type": "ADDED", "object": {"spec": {"displayName": "\\u00e9 \\ud83d\\ude00"}}}\n',
    b'{"text": "a lone \\ud800 surrogate"}',  # orjson refuses it, json reads it
    "{\"text\": \"str, not bytes\"}",
])
def test_answers_parse_as_json_reads_them(raw: bytes | str) -> None:
    assert parse_json(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a": 1} trailing'])
def test_what_is_not_json_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(raw)
