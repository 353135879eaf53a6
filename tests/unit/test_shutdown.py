"""SIGTERM drains the webhook (``Connection: close`` on every answer) before kopf stops."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

import aiohttp

from alert_contacts.runtime.shutdown import DrainingWebhookServer, Shutdown


async def allow(_: Any, **__: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "1", "allowed": True}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_draining_server_closes_each_connection_after_its_answer() -> None:
    async def main() -> tuple[list[tuple[int, str | None]], list[int]]:
        server = DrainingWebhookServer(addr="127.0.0.1", port=free_port(), insecure=True)
        serving = server(allow)
        config = await anext(serving)
        answers: list[tuple[int, str | None]] = []
        opened: list[int] = []  # for each request, connections opened so far
        connections = 0

        async def on_open(*_: Any) -> None:
            nonlocal connections
            connections += 1

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_open)
        try:
            async with aiohttp.ClientSession(trace_configs=[trace]) as session:
                for draining in (False, False, True, True):
                    server.draining = draining
                    async with session.post(f"{config['url']}/contacts", json={}) as resp:
                        await resp.read()
                        answers.append((resp.status, resp.headers.get("Connection")))
                        opened.append(connections)
        finally:
            await serving.aclose()
        return answers, opened

    answers, opened = asyncio.run(main())
    assert answers == [(200, None), (200, None), (200, "close"), (200, "close")]
    # Kept alive until draining; each draining answer ends its connection, so
    # the client (not the server) closes it, and the next request opens another.
    assert opened == [1, 1, 1, 2]


def test_sigterm_drains_first_then_raises_the_stop_flag() -> None:
    async def main() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        shutdown = Shutdown(drain_seconds=1.0)
        server = shutdown.server = DrainingWebhookServer(addr="127.0.0.1", insecure=True)
        handled = asyncio.Event()
        terminate = shutdown.terminate

        def observed(loop: asyncio.AbstractEventLoop) -> None:
            terminate(loop)
            handled.set()

        shutdown.terminate = observed  # type: ignore[method-assign]
        shutdown.install(loop)
        try:
            started = loop.time()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(handled.wait(), timeout=5)
            stopped_at_once = not server.draining or shutdown.stop_flag.is_set()
            os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM does not cut the drain short
            await asyncio.sleep(0.05)
            stopped_on_second = shutdown.stop_flag.is_set()
            await asyncio.wait_for(shutdown.stop_flag.wait(), timeout=5)
            return stopped_at_once, stopped_on_second, loop.time() - started
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    stopped_at_once, stopped_on_second, took = asyncio.run(main())
    assert not stopped_at_once, "draining, not stopped, right after SIGTERM"
    assert not stopped_on_second
    assert took >= 1.0


def test_without_a_webhook_sigterm_stops_at_once() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        shutdown = Shutdown(drain_seconds=30)
        shutdown.install(loop)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(shutdown.stop_flag.wait(), timeout=5)
            return shutdown.stop_flag.is_set()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    assert asyncio.run(main())


def test_the_handler_is_installed_after_what_the_startup_handler_runs_beside() -> None:
    # kopf adds its own SIGTERM handler in the loop iteration after the startup
    # task's first step; ours is scheduled from that step and must come later.
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        shutdown = Shutdown()
        kopfs = asyncio.Event()

        async def startup() -> None:
            shutdown.install_after_kopf()

        async def spawn_like_kopf() -> None:
            task = asyncio.create_task(startup())
            await asyncio.sleep(0)
            loop.add_signal_handler(signal.SIGTERM, kopfs.set)
            await task

        try:
            await spawn_like_kopf()
            await asyncio.sleep(0)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(shutdown.stop_flag.wait(), timeout=5)
            return kopfs.is_set()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    assert asyncio.run(main()) is False
