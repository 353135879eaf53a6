"""The few places that talk to the Kubernetes API outside kopf's own machinery.

kopf watches and indexes our objects; writing one object's status because
*another* object changed (a duplicate's owner was deleted, quota freed up) is
outside what a kopf handler can patch, so those writes go through here.
The ``kubernetes`` client is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from alert_contacts.domain.types import GROUP, VERSION, ObjectRef

logger = logging.getLogger(__name__)

# (connect, read) seconds: a hung connection must fail a write, not stall the loop.
REQUEST_TIMEOUT = (5, 30)
PLURALS = {"Contact": "contacts", "DingTalkBot": "dingtalkbots", "ContactGroup": "contactgroups"}
COMPONENT = "alert-contacts-operator"


def load_client() -> kubernetes.client.ApiClient:
    """A client for the same cluster kopf talks to: in-cluster, else KUBECONFIG."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


def describe_error(error: BaseException) -> str:
    """An API error for logs: status and reason, never the bodies (they hold field values)."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return type(error).__name__


class Kube:
    """Status writes and Events, bounded in concurrency."""

    def __init__(self, api: kubernetes.client.ApiClient, concurrency: int = 8) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._limit = asyncio.Semaphore(concurrency)

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> bool:
        """Merge-patch the status subresource; False when the object is gone."""
        async with self._limit:
            try:
                await asyncio.to_thread(
                    self._custom.patch_namespaced_custom_object_status,
                    GROUP, VERSION, ref.namespace, PLURALS[ref.kind], ref.name, patch,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as e:
                if e.status == 404:
                    return False  # deleted meanwhile: nothing to report on
                raise
        return True

    async def post_event(
        self, ref: ObjectRef, uid: str, type_: str, reason: str, message: str
    ) -> None:
        now = datetime.datetime.now(datetime.UTC)
        body: Any = {
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
        async with self._limit:
            try:
                await asyncio.to_thread(
                    self._core.create_namespaced_event, ref.namespace, body,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except Exception as e:
                # An Event is a courtesy; losing one must not stop status from converging.
                logger.warning("could not post an event for %s: %s", ref, describe_error(e))
