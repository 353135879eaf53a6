"""The operator's own calls to the Kubernetes API: list/watch, status writes, Events.

kopf serves admission, probes and startup/cleanup; the bulk of the traffic
(watching every Contact, DingTalkBot, ContactGroup and Secret, and
writing statuses) goes through this one asynchronous client.

How: the ``kubernetes`` package loads the configuration, exactly as kopf and
the kubectl plugin do (kubeconfig with client certificates, tokens and exec
plugins; in cluster, the ServiceAccount token, re-read as it rotates), and
requests go over one aiohttp connection pool as raw JSON: no thread pool caps
the requests in flight, and a LIST of 50,000 objects never becomes 50,000
model instances. That package loads its generated models lazily, so they cost
nothing here; ``kubernetes_asyncio`` imported all of its models (about 30 MB
of the operator's memory) and is not used. ``request`` is the generic entry
point for any API call the operator needs (a Lease, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kubernetes.client
import kubernetes.config
import orjson

from alert_contacts.domain.types import GROUP, VERSION, ObjectRef

logger = logging.getLogger(__name__)

# (connect, read) seconds: a hung connection must fail a write, not stall the loop.
REQUEST_TIMEOUT = (5.0, 30.0)
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


# A request's time limit: seconds in all, (connect, read) seconds, or aiohttp's own.
RequestTimeout = float | tuple[float, float] | aiohttp.ClientTimeout


def client_timeout(timeout: RequestTimeout) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, tuple):
        connect, read = timeout
        return aiohttp.ClientTimeout(connect=connect, sock_connect=connect, sock_read=read)
    return aiohttp.ClientTimeout(total=timeout)


def write_timeout(budget: float) -> aiohttp.ClientTimeout:
    """``REQUEST_TIMEOUT``, but over within ``budget`` seconds (connect, send and read)."""
    connect, read = REQUEST_TIMEOUT
    return aiohttp.ClientTimeout(total=None if math.isinf(budget) else budget,
                                 connect=connect, sock_connect=connect, sock_read=read)


class Client:
    """One aiohttp connection pool to the API server, authenticated as ``configuration`` says."""

    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self.configuration = configuration
        self.base = str(configuration.host).rstrip("/")
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.options: dict[str, Any] = {}
        if configuration.tls_server_name:
            self.options["server_hostname"] = configuration.tls_server_name
        if configuration.proxy:
            self.options["proxy"] = configuration.proxy
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS, ssl=context),
            trust_env=True,  # HTTPS_PROXY and NO_PROXY from the environment apply
            # A watch event holds a whole object; etcd's limit is 1.5 MiB.
            read_bufsize=2**21,
        )

    def authorization(self) -> str | None:
        """The Authorization header, refreshed first when it can expire.

        The refresh re-reads an in-cluster token file, or runs a kubeconfig's
        exec plugin once its token expired (on the event loop: it holds the loop
        for as long as the plugin runs, once per token lifetime).
        """
        bearer = self.configuration.auth_settings().get("BearerToken")
        return str(bearer["value"]) if bearer and bearer.get("value") else None

    async def close(self) -> None:
        await self.session.close()


async def load_client() -> Client:
    """A client for the same cluster kopf talks to: in-cluster, else KUBECONFIG."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except kubernetes.config.ConfigException:
        # An exec plugin may take a while: run the loader off the event loop.
        await asyncio.to_thread(
            kubernetes.config.load_kube_config,
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration,
            persist_config=False,
        )
    return Client(configuration)


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


def parse_json(raw: bytes | str) -> Any:
    """An answer of the API server, parsed: by orjson (half the time of ``json`` on a
    page of objects, and a restart parses every object), and by ``json`` where orjson
    refuses what ``json`` reads (a lone surrogate escape). ``ValueError`` when it is
    not JSON. Unlike ``json``, orjson reads an integer beyond 64 bits as a float:
    the API server sends none (the integers of our CRDs, of Secrets and of metadata
    are int64)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


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

    def __init__(self, client: Client) -> None:
        self._client = client
        self._writes = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def close(self) -> None:
        await self._client.close()

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        request_timeout: RequestTimeout,
    ) -> aiohttp.ClientResponse:
        url = self._client.base + path
        if query:
            url += "?" + urlencode(list(query.items()))
        headers = {"Content-Type": content_type, "Accept": "application/json",
                   "User-Agent": COMPONENT}
        authorization = self._client.authorization()
        if authorization:
            headers["Authorization"] = authorization
        return await self._client.session.request(
            method, url, headers=headers, timeout=client_timeout(request_timeout),
            data=None if body is None else json.dumps(body), **self._client.options,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: RequestTimeout = REQUEST_TIMEOUT,
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
        return parse_json(raw) if raw else None

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
