"""The operator's own calls to the Kubernetes API: list/watch, status writes, Events.

kopf serves admission, probes and startup/cleanup; the bulk of the traffic
(watching every Contact, DingTalkBot, ContactGroup and Secret, and
writing statuses) goes through this one asynchronous client.

Why ``kubernetes_asyncio`` and raw JSON: it loads kubeconfig (client
certificates, tokens, exec plugins) and the in-cluster service account
(re-reading the projected token as it rotates), and sends requests over one
aiohttp connection pool; no thread pool caps the number of requests in
flight, as ``asyncio.to_thread`` around the synchronous client did. Its
generated models are not used: ``call_api(..., _preload_content=False)``
returns the aiohttp response, which is read as JSON (a LIST of 50,000
objects never becomes 50,000 model instances). ``request`` is the generic
entry point for any other API call the operator needs (a Lease, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import kubernetes_asyncio.client as k8s_client
import kubernetes_asyncio.config as k8s_config

from alert_contacts.domain.types import GROUP, VERSION, ObjectRef

logger = logging.getLogger(__name__)

# (connect, read) seconds: a hung connection must fail a write, not stall the loop.
REQUEST_TIMEOUT = (5, 30)
PLURALS = {"Contact": "contacts", "DingTalkBot": "dingtalkbots", "ContactGroup": "contactgroups"}
COMPONENT = "alert-contacts-operator"
# Every write names the operator, so managedFields say who set the status.
FIELD_MANAGER = COMPONENT
# Connections to the API server: one long-lived watch per kind plus writes.
# Writes in flight are bounded below that, so a burst of thousands of status
# writes queues here instead of holding every watch's connection hostage.
CONNECTIONS = 64
WRITES_IN_FLIGHT = 48


class ApiError(Exception):
    """An API answer outside 2xx. ``message`` is the API's own text: it may quote
    field values (an email), so log ``str(error)`` (status and reason), not it."""

    def __init__(self, status: int, reason: str, message: str = "", retry_after: float = 0.0):
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class Fenced(Exception):
    """A write not sent: this replica's time to write (its leadership) ran out first."""


def write_timeout(budget: float) -> Any:
    """``REQUEST_TIMEOUT``, but over within ``budget`` seconds (connect, send and read)."""
    if math.isinf(budget):
        return REQUEST_TIMEOUT
    connect, read = REQUEST_TIMEOUT
    return aiohttp.ClientTimeout(total=budget, connect=connect, sock_connect=connect,
                                 sock_read=read)


async def load_client() -> k8s_client.ApiClient:
    """A client for the same cluster kopf talks to: in-cluster, else KUBECONFIG."""
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except k8s_config.ConfigException:
        # The library reads KUBECONFIG when imported; read it now, when it is asked for.
        await k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = CONNECTIONS
    api = k8s_client.ApiClient(configuration)
    api.user_agent = COMPONENT
    return api


def describe_error(error: BaseException) -> str:
    """An API error for logs: status and reason, never the bodies (they hold field values)."""
    if isinstance(error, ApiError):
        return str(error)
    return type(error).__name__


def custom_path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
    """The API path of our objects of ``kind``: all, a namespace's, or one."""
    path = f"/apis/{GROUP}/{VERSION}"
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{PLURALS[kind]}"
    return path if name is None else f"{path}/{name}"


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        return float(headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    raw = await response.read()
    message = ""
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(raw).get("message", ""))
    raise ApiError(response.status, response.reason or "", message, _retry_after(response.headers))


class Kube:
    """Asynchronous API access: a generic ``request``, list pages, watch streams,
    status merge patches and Events."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api
        self._writes = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        request_timeout: Any,
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse = await self._api.call_api(
            path, method,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=request_timeout,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: Any = REQUEST_TIMEOUT,
    ) -> Any:
        """Any API call: the parsed JSON answer, or ``ApiError`` for a non-2xx one.

        For example ``await kube.request("GET", "/apis/coordination.k8s.io/v1/"
        "namespaces/ns/leases/name")``; a write should carry
        ``query={"fieldManager": FIELD_MANAGER}``.
        """
        response = await self._call(method, path, query, body, content_type, request_timeout)
        async with response:
            await _raise_for_status(response)
            raw = await response.read()
        return json.loads(raw) if raw else None

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, query: Mapping[str, Any], read_timeout: float
    ) -> AsyncIterator[AsyncIterable[bytes]]:
        """A GET whose answer is read line by line (a watch); ``ApiError`` for non-2xx."""
        response = await self._call(
            "GET", path, query, None, "application/json",
            aiohttp.ClientTimeout(connect=REQUEST_TIMEOUT[0], sock_read=read_timeout),
        )
        async with response:
            await _raise_for_status(response)
            yield response.content

    async def patch_status(
        self, ref: ObjectRef, patch: dict[str, Any], *, budget: Callable[[], float] | None = None
    ) -> bool:
        """Merge-patch the status subresource; False when the object is gone.

        ``budget``: the seconds this replica may still write (``Leadership.write_budget``),
        asked once a connection slot is free, right before sending: with none left the
        patch is not sent (``Fenced``), else the request times out when it runs out.
        """
        try:
            async with self._writes:
                left = math.inf if budget is None else budget()
                if left <= 0:
                    raise Fenced(f"{ref}: not leading any more")
                await self.request(
                    "PATCH", custom_path(ref.kind, ref.namespace, ref.name) + "/status",
                    query={"fieldManager": FIELD_MANAGER}, body=patch,
                    content_type="application/merge-patch+json",
                    request_timeout=write_timeout(left),
                )
        except ApiError as e:
            if e.status == 404:
                return False  # deleted meanwhile: nothing to report on
            raise
        return True

    async def post_event(
        self, ref: ObjectRef, uid: str, type_: str, reason: str, message: str
    ) -> None:
        now = datetime.datetime.now(datetime.UTC)
        body: Any = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": ref.kind,
                "namespace": ref.namespace, "name": ref.name, "uid": uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        try:
            async with self._writes:
                await self.request(
                    "POST", f"/api/v1/namespaces/{ref.namespace}/events",
                    query={"fieldManager": FIELD_MANAGER}, body=body,
                )
        except (TimeoutError, ApiError, aiohttp.ClientError) as e:
            # An Event is a courtesy; losing one must not stop status from converging.
            logger.warning("could not post an event for %s: %s", ref, describe_error(e))
