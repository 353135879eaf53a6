"""``/healthz``: the operator's own probe endpoint (startup, readiness, liveness).

kopf's probe endpoint answers a failing probe by raising inside aiohttp, which
logs a traceback at ERROR for every poll of a replica that is still listing,
and it caches answers for 10 s, which holds a ready replica out of the webhook
Service that much longer. This one answers at once: 200 ``{"synced": true}``,
or 503 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

# A change waiting this long for a reconcile pass, with no progress meanwhile (no
# chunk planned, no write done), means the loop is stuck. A long pass that keeps
# writing (an upgrade rewriting every status) is not.
STALL_LIMIT_SECONDS = 60.0


def health_problem(synced: bool, stalled_for: float) -> str | None:
    """Why this replica should not take requests (or should be restarted), if it should not.

    Not synced: the store lacks part of the initial listing, so admission would
    refuse with 503 and readiness keeps requests away. A change waiting too long
    for a reconcile pass while the pass makes no progress (the leader's loop is
    stuck): liveness restarts it.
    """
    if not synced:
        return "not synced yet: the initial listing is not in the store"
    if stalled_for > STALL_LIMIT_SECONDS:
        return f"a change has waited {stalled_for:.0f}s for a reconcile pass"
    return None


async def serve_health(port: int, problem: Callable[[], str | None]) -> web.AppRunner:
    """Serve ``GET /healthz`` on 0.0.0.0:``port`` until the runner is cleaned up."""

    async def healthz(_: web.Request) -> web.Response:
        why = problem()
        if why is None:
            return web.json_response({"synced": True})
        return web.json_response({"synced": False, "reason": why}, status=503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
