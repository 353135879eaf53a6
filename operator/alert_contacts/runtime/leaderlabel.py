"""The leader marks its own Pod, so that Alertmanager reaches the leader only.

Only the holder of the Lease delivers alerts; a replica that does not lead
answers the receiver with 503 and ``Retry-After``. The chart's receiver Service
selects :data:`LEADER_LABEL` ``"true"`` on top of the Pod's usual labels, so its
only endpoint is the leader's Pod (the webhook and metrics Service keep every
replica). The leader sets the label when it becomes leader and removes it when
it stops leading (the Lease lost, fencing, a clean shutdown before the Lease
is released); a replica that starts without leading removes a label left over
from an earlier run in the same Pod (a container restart).

Writing the label must never delay the Lease renewal: :class:`LeaderPodLabel`
takes the wanted state without waiting and writes it in its own task, the
latest wanted state winning. A failed write is logged and tried again when the
elector next reports the state (every retry period); it is never fatal, the
receiver's 503 stays the safety net.

Only in a Pod: without both ``POD_NAME`` and ``POD_NAMESPACE`` (``make run``,
tests) there is no Pod to label and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alert_contacts.runtime.kube import FIELD_MANAGER, Kube, describe_error

logger = logging.getLogger(__name__)

LEADER_LABEL = "alerting.contacts.dev/leader"


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def own_pod(env: Mapping[str, str]) -> PodRef | None:
    """This process's Pod, from the downward API variables; None outside a Pod."""
    name, namespace = env.get("POD_NAME"), env.get("POD_NAMESPACE")
    return PodRef(namespace, name) if name and namespace else None


# ------------------------------------------------------------- the pure decisions


def leader_label_patch(leading: bool) -> dict[str, Any]:
    """The merge patch of the Pod that says whether it leads (null removes the label)."""
    return {"metadata": {"labels": {LEADER_LABEL: "true" if leading else None}}}


def label_write_due(wanted: bool | None, written: bool | None) -> bool:
    """Whether the label must be written: something is wanted (None: nothing
    reported yet) that is not known to be on the Pod (``written`` None: never
    written by this process, or the last write failed, so the Pod's state is
    unknown)."""
    return wanted is not None and wanted != written


# ----------------------------------------------------------------- the API access


class PodLabelApi(Protocol):
    async def patch(self, pod: PodRef, patch: dict[str, Any]) -> None:
        """Merge-patch the Pod."""
        ...


class KubePodLabelApi:
    """:class:`PodLabelApi` on the operator's async API client (``runtime.kube``)."""

    def __init__(self, kube: Kube, timeout: float) -> None:
        self._kube = kube
        self._timeout = timeout

    async def patch(self, pod: PodRef, patch: dict[str, Any]) -> None:
        await self._kube.request(
            "PATCH", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
            query={"fieldManager": FIELD_MANAGER}, body=patch,
            content_type="application/merge-patch+json", request_timeout=self._timeout,
        )


# ---------------------------------------------------------------------- the writer


class LeaderPodLabel:
    """Keeps :data:`LEADER_LABEL` on this replica's Pod in step with its leadership."""

    def __init__(self, api: PodLabelApi, pod: PodRef) -> None:
        self.api = api
        self.pod = pod
        self.wanted: bool | None = None
        self.written: bool | None = None
        self._failure = ""  # the last failure logged at WARNING ("" after a success)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def want(self, leading: bool) -> None:
        """Report the leadership now; returns at once, the write happens in the background."""
        self.wanted = leading
        if not label_write_due(self.wanted, self.written):
            return
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leader label of the Pod")

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            while label_write_due(self.wanted, self.written):
                if not await self._write():
                    break  # tried again at the next report (the next renewal round)

    async def _write(self) -> bool:
        wanted = self.wanted
        assert wanted is not None
        previous = self.written
        try:
            await self.api.patch(self.pod, leader_label_patch(wanted))
        except Exception as e:  # the API server down or slow, RBAC, a deleted Pod
            self.written = None
            failure = describe_error(e)
            # Repeats every retry period while it lasts: one WARNING, then DEBUG.
            level = logging.DEBUG if failure == self._failure else logging.WARNING
            self._failure = failure
            logger.log(level, "could not %s label %s on Pod %s: %s; trying again at the "
                       "next renewal", "set" if wanted else "remove", LEADER_LABEL, self.pod,
                       failure)
            return False
        self.written = wanted
        recovered, self._failure = bool(self._failure), ""
        level = logging.INFO if (wanted or previous or recovered) else logging.DEBUG
        logger.log(level, "%s label %s on Pod %s: the receiver Service %s", "set" if wanted
                   else "removed", LEADER_LABEL, self.pod,
                   "routes alerts to this replica" if wanted else "no longer routes to it")
        return True

    async def close(self) -> None:
        """A clean shutdown: stop the task, then remove the label once if it may be
        on the Pod (bounded by the API timeout; a failure is logged)."""
        self.wanted = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if label_write_due(self.wanted, self.written):
            await self._write()
