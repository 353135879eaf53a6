"""The e2e harness: the operator process, kubectl, and bounded waits.

Every wait here has a deadline and says what it waited for when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
GROUP = "alerting.contacts.dev"
VERSION = "v1alpha1"
PLURALS = {"Contact": "contacts", "DingTalkBot": "dingtalkbots", "ContactGroup": "contactgroups"}

T = TypeVar("T")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.05
) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


@dataclass
class Cluster:
    kubeconfig: Path
    api: kubernetes.client.ApiClient

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), **extra}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "kubectl"), *args], input=input, capture_output=True, text=True,
            env=self.env(), timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    # -- our objects through the Python client, as a program would use them --

    def create(self, kind: str, namespace: str, name: str, spec: dict[str, Any],
               labels: dict[str, str] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], body
        )
        return result

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return result

    def patch_spec(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": spec}
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete one of our objects; one already gone is fine, any other refusal
        fails here rather than as a misleading timeout later."""
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            )
        except ApiException as e:
            if e.status != 404:
                raise AssertionError(
                    f"deleting {kind} {namespace}/{name} failed: HTTP {e.status} {e.reason}"
                    f" {e.body}") from e

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            result = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURALS[kind])
        else:
            result = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind]
            )
        items: list[dict[str, Any]] = result["items"]
        return items


def manifest(kind: str, namespace: str, name: str, spec: dict[str, Any],
             labels: dict[str, str] | None = None) -> str:
    """One of our objects as ``kubectl apply -f -`` reads it."""
    return json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
    })


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def wait_for_condition(
    cluster: Cluster, kind: str, namespace: str, name: str, type_: str, status: str,
    timeout: float = 15, reason: str | None = None,
) -> dict[str, Any]:
    """Wait until the object's condition ``type_`` has ``status`` (and ``reason``)
    for its current generation; return the object."""

    def probe() -> dict[str, Any] | None:
        obj = cluster.get(kind, namespace, name)
        cond = condition(obj, type_)
        if obj is None or cond is None:
            return None
        current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get(
            "generation"
        )
        if current and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return obj
        return None

    def describe() -> str:
        obj = cluster.get(kind, namespace, name)
        return json.dumps((obj or {}).get("status"), indent=1)

    try:
        return wait_until(
            f"{kind} {namespace}/{name} {type_}={status}" + (f" ({reason})" if reason else ""),
            probe, timeout,
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\nstatus now: {describe()}") from None


@dataclass
class Operator:
    """``python -m alert_contacts`` as a child process, as production runs it."""

    cluster: Cluster
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    webhook_config: str = "alert-contacts.dev"
    health_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log_offset: int = 0

    def start(self, wait: bool = True) -> None:
        self.health_port = free_port()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alert_contacts", "--verbose",
             f"--health-port={self.health_port}", "--metrics-port=0",
             f"--webhook-config-name={self.webhook_config}", *self.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.cluster.env(**self.env), cwd=REPO,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        """Ready = its indexes are complete, it serves /healthz, and its webhook
        configuration points at the current process.

        The log line comes first: kopf caches /healthz results for 10 s, so a
        poll that landed before the sync would delay readiness by that much.
        """

        def alive() -> None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")

        def synced() -> bool:
            alive()
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return b"indexes are complete" in log.read()

        def probe() -> bool:
            alive()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
                ) as resp:
                    health = json.loads(resp.read())
            except OSError:
                return False
            return bool(health.get("synced"))

        wait_until("the operator to log that its indexes are complete", synced, timeout)
        wait_until("the operator's /healthz to report it synced", probe, timeout, interval=0.1)
        if "--webhook=none" not in self.args:
            wait_until("the operator's webhook to admit requests", self._webhook_serving, timeout)

    def _webhook_serving(self) -> bool:
        # A dry-run create goes through admission: when it is refused by *our*
        # webhook for a reason of ours, the webhook configuration points at us.
        result = self.cluster.kubectl(
            "create", "--dry-run=server", "-o", "name", "-f", "-", check=False,
            input=json.dumps({
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Contact",
                "metadata": {"name": "webhook-probe", "namespace": "default"},
                "spec": {"email": "not-an-email"},
            }),
        )
        return "spec.email" in result.stderr and "admission webhook" in result.stderr

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_operator(cluster: Cluster, log_path: Path, **kwargs: Any) -> Iterator[Operator]:
    operator = Operator(cluster, log_path, **kwargs)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


@contextlib.contextmanager
def without_admission(operator: Operator, log_path: Path) -> Iterator[Operator]:
    """The session operator steps aside for one without the webhook, as when
    objects predate the webhook or race past it; it is back afterwards."""
    operator.stop()
    try:
        with running_operator(operator.cluster, log_path, args=["--webhook=none"]) as bare:
            yield bare
    finally:
        operator.start()


# -- helpers for the e2e tests of contacts, bots, groups, races, quota and restart --

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token="


def unique_token() -> str:
    """A DingTalk-shaped access token (64 hex characters) no other test uses."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def unique_mobile() -> tuple[str, str]:
    """A fresh Chinese mobile number: (national digits ``138xxxxxxxx``, its E.164 form)."""
    digits = f"138{random.randrange(10**8):08d}"
    return digits, f"+86{digits}"


def refusal(call: Callable[[], object]) -> tuple[int, str]:
    """Run an API call that must be refused; return its HTTP status and message."""
    try:
        call()
    except ApiException as e:
        body = json.loads(e.body) if e.body else {}
        return int(e.status), str(body.get("message", e.reason))
    raise AssertionError("the API server admitted a request that should have been refused")


def ready_reason(obj: dict[str, Any] | None) -> tuple[str, str] | None:
    """``(status, reason)`` of Ready when it was set for the object's current generation."""
    cond = condition(obj, "Ready")
    if obj is None or cond is None:
        return None
    if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    return cond["status"], cond["reason"]


def order_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    """The ownership order DESIGN.md defines: (creationTimestamp, namespace, name)."""
    meta = obj["metadata"]
    return meta["creationTimestamp"], meta["namespace"], meta["name"]


def create_many(
    cluster: Cluster, objects: list[tuple[str, str, str, dict[str, Any], dict[str, str]]],
    workers: int = 8,
) -> list[dict[str, Any] | ApiException]:
    """Create ``(kind, namespace, name, spec, labels)`` objects concurrently; each
    result is the created object or the refusal."""

    def one(item: tuple[str, str, str, dict[str, Any], dict[str, str]]
            ) -> dict[str, Any] | ApiException:
        kind, namespace, name, spec, labels = item
        try:
            return cluster.create(kind, namespace, name, spec, labels)
        except ApiException as e:
            return e

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, objects))


def put_secret(cluster: Cluster, namespace: str, name: str, data: dict[str, str]) -> None:
    """Create or replace an Opaque Secret with these text values."""
    body = {"metadata": {"name": name, "namespace": namespace}, "type": "Opaque",
            "stringData": data}
    try:
        cluster.core.create_namespaced_secret(namespace, body)
    except ApiException as e:
        if e.status != 409:
            raise
        # stringData merges into data; replace so that removed keys go away too.
        cluster.core.replace_namespaced_secret(name, namespace, body)


def events_for(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    """Kubernetes Events whose involved object is ``name`` in ``namespace``."""
    result = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return list(result.items)
