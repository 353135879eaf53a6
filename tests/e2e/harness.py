"""The e2e harness: the operator process, kubectl, and bounded waits.

Every wait here has a deadline and says what it waited for when it fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
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
    state: Path | None = None  # the control plane's directory (tests/controlplane/cluster.py)

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
            # No receiver unless a test asks for one: the default port 8088 would
            # collide between operators running side by side on one machine.
            env=self.cluster.env(**{"ALERT_CONTACTS_RECEIVER_PORT": "0", **self.env}), cwd=REPO,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        """Ready = its indexes are complete, it serves /healthz, and its webhook
        configuration points at the current process.

        The log line comes first, so that a failure names the stage that hung.
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


# -- several replicas behind a balancer, for the HA and fault tests --


class Balancer:
    """A TCP balancer on loopback standing in for the webhook Service.

    What a Service gives in a cluster: connections spread over the endpoints
    of *ready* Pods. Here each backend is (webhook port, health port) of an
    operator process on the host; a health checker polls each backend's
    /healthz every ``interval`` (as the readiness probe and the endpoints
    controller would, only faster) and only ready backends get connections,
    round-robin. ``drain`` takes a backend out of rotation at once, as a
    terminating Pod's endpoint is removed before its preStop hook ends. A
    connection refused by a backend that died since the last check is tried
    on the next ready one (kube-proxy would not; see docs/operations.md).
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.port = 0
        self.backends: dict[int, int] = {}  # webhook port -> health port
        self.ready: set[int] = set()
        self.drained: set[int] = set()
        self.connections = 0
        self.open: dict[int, int] = {}  # webhook port -> connections open to it now
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        for target in (self._accept_loop, self._health_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def add(self, webhook_port: int, health_port: int) -> None:
        with self._lock:
            self.backends[webhook_port] = health_port
            self.drained.discard(webhook_port)

    def drain(self, webhook_port: int) -> None:
        with self._lock:
            self.drained.add(webhook_port)
            self.ready.discard(webhook_port)

    def remove(self, webhook_port: int) -> None:
        with self._lock:
            self.backends.pop(webhook_port, None)
            self.ready.discard(webhook_port)
            self.drained.discard(webhook_port)

    def _healthy(self, health_port: int) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{health_port}/healthz", timeout=1
            ) as resp:
                return bool(resp.status == 200 and json.loads(resp.read()).get("synced"))
        except (OSError, ValueError):
            return False

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                backends = dict(self.backends)
            for webhook_port, health_port in backends.items():
                healthy = self._healthy(health_port)
                with self._lock:
                    if healthy and webhook_port in self.backends and (
                        webhook_port not in self.drained
                    ):
                        self.ready.add(webhook_port)
                    else:
                        self.ready.discard(webhook_port)
            self._stop.wait(self.interval)

    def _choose(self) -> list[int]:
        with self._lock:
            ready = sorted(self.ready)
            self._next += 1
            start = self._next
        return [ready[(start + i) % len(ready)] for i in range(len(ready))] if ready else []

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        for port in self._choose():
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()  # no ready endpoint: the API server sees a refused/closed connection
            return
        with self._lock:
            self.connections += 1
            self.open[port] = self.open.get(port, 0) + 1
        upstream.settimeout(None)
        client.settimeout(None)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(timeout=30)
        client.close()
        upstream.close()
        with self._lock:
            self.open[port] -= 1


@dataclass
class Replica:
    operator: Operator
    webhook_port: int
    metrics_port: int
    pod: str | None = None  # its Pod object (POD_NAME), with ``Replicas(pod_namespace=...)``

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the replica's /metrics (None when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as resp:
            text = resp.read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample == (f"{name}{{{wanted}}}" if labels else name):
                return float(value)
        return None

    @property
    def identity(self) -> str:
        """The Lease holder identity of the process (the operator's default: $POD_NAME,
        else hostname_pid)."""
        if self.pod:
            return self.pod
        assert self.operator.proc is not None
        return f"{socket.gethostname()}_{self.operator.proc.pid}"


def create_plain_pod(cluster: Cluster, namespace: str, name: str) -> None:
    """A Pod object standing for a replica's Pod, for the operator to label.

    No kubelet or scheduler runs here: the Pod stays Pending with no node, which
    does not matter, only its metadata is used. (An unscheduled Pod is deleted at
    once with its namespace.)
    """

    def default_account() -> bool:  # the ServiceAccount admission plugin requires it
        accounts = cluster.core.list_namespaced_service_account(namespace).items
        return any(a.metadata.name == "default" for a in accounts)

    wait_until(f"the default ServiceAccount of namespace {namespace}", default_account,
               timeout=30, interval=0.1)
    cluster.core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "alert-contacts-operator"}},
        "spec": {"containers": [{"name": "operator", "image": "alert-contacts-operator:e2e"}]},
    })


def pod_label(cluster: Cluster, namespace: str, name: str, key: str) -> str | None:
    labels = cluster.core.read_namespaced_pod(name, namespace).metadata.labels or {}
    return labels.get(key)


class Replicas:
    """Operator processes on the host as a Deployment's Pods, behind one balancer,
    with a ValidatingWebhookConfiguration (failurePolicy Fail) pointing at it."""

    LEASE_NAMESPACE = "default"
    LEASE_NAME = "alert-contacts-operator"

    def __init__(self, cluster: Cluster, workdir: Path, args: list[str] | None = None,
                 timeout_seconds: int = 5, webhook: bool = True,
                 pod_namespace: str | None = None) -> None:
        """``pod_namespace``: give every replica a Pod object there (``create_plain_pod``)
        and its POD_NAME and POD_NAMESPACE, as the chart's downward API does."""
        from alert_contacts.runtime.certs import write_self_signed

        self.cluster = cluster
        self.workdir = workdir
        self.args = args or []
        self.webhook = webhook
        self.pod_namespace = pod_namespace
        self.certs = workdir / "webhook-tls"
        self.certs.mkdir(parents=True, exist_ok=True)
        ca = write_self_signed(self.certs, ["127.0.0.1", "localhost"])
        self.balancer = Balancer()
        self.balancer.start()
        self.replicas: list[Replica] = []
        self._started = 0
        self.webhook_config = f"alert-contacts-ha-{uuid.uuid4().hex[:6]}"
        if not webhook:
            return
        bundle = base64.b64encode(ca.read_bytes()).decode()
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.webhook_config},
            "webhooks": [{
                "name": f"{plural}.{GROUP}",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": timeout_seconds,
                "matchPolicy": "Equivalent",
                "rules": [{"apiGroups": [GROUP], "apiVersions": [VERSION],
                           "operations": ["CREATE", "UPDATE"], "resources": [plural],
                           "scope": "Namespaced"}],
                "clientConfig": {"url": f"https://127.0.0.1:{self.balancer.port}/{plural}",
                                 "caBundle": bundle},
            } for plural in PLURALS.values()],
        }))

    def start(self, wait: bool = True, pod: str | None = None) -> Replica:
        """A new replica (a new Pod: new identity, new ports); ready when ``wait``.

        ``pod``: run in that existing Pod instead (a restarted container: the same
        identity); only with ``pod_namespace``.
        """
        self._started += 1
        port, metrics_port = free_port(), free_port()
        webhook = (["--webhook=service", f"--webhook-port={port}",
                    f"--webhook-cert-dir={self.certs}"] if self.webhook else ["--webhook=none"])
        env = {"ALERT_CONTACTS_LEASE_NAMESPACE": self.LEASE_NAMESPACE}
        if self.pod_namespace is not None:
            if pod is None:
                pod = f"alert-contacts-operator-{self._started}"
                create_plain_pod(self.cluster, self.pod_namespace, pod)
            env |= {"POD_NAME": pod, "POD_NAMESPACE": self.pod_namespace}
        operator = Operator(
            self.cluster, self.workdir / f"replica-{self._started}.log",
            args=[*webhook, f"--metrics-port={metrics_port}", *self.args],
            env=env,
        )
        operator.start(wait=False)
        replica = Replica(operator, port, metrics_port, pod)
        self.balancer.add(port, operator.health_port)
        self.replicas.append(replica)
        if wait:
            operator.wait_ready()
        if wait and self.webhook:
            wait_until("the balancer to route to the new replica",
                       lambda: port in self.balancer.ready, timeout=30)
        return replica

    def kill(self, replica: Replica) -> None:
        """SIGKILL, as a crash or an OOM kill: no cleanup, the Lease is not released.

        Returns once the API server's connections to the killed process are
        closed (their peers see the close), as the kernel closes a dead
        process's sockets: a request racing the kill itself fails in a cluster too.
        """
        assert replica.operator.proc is not None
        replica.operator.proc.kill()
        replica.operator.proc.wait(timeout=10)
        self.balancer.remove(replica.webhook_port)
        self.replicas.remove(replica)
        wait_until("the killed replica's connections to close",
                   lambda: self.balancer.open.get(replica.webhook_port, 0) == 0, timeout=10)

    def terminate(self, replica: Replica) -> None:
        """A Pod's graceful termination: out of the Service first (preStop), then SIGTERM."""
        self.balancer.drain(replica.webhook_port)
        replica.operator.stop()
        self.balancer.remove(replica.webhook_port)
        self.replicas.remove(replica)

    def holder(self) -> str:
        try:
            lease = kubernetes.client.CoordinationV1Api(self.cluster.api).read_namespaced_lease(
                self.LEASE_NAME, self.LEASE_NAMESPACE)
        except ApiException as e:
            if e.status == 404:
                return ""
            raise
        return str(lease.spec.holder_identity or "")

    def leader(self, timeout: float = 40) -> Replica:
        """The replica holding the Lease (waits until one does)."""

        def probe() -> Replica | None:
            holder = self.holder()
            return next((r for r in self.replicas if r.identity == holder), None)

        return wait_until("a replica to hold the Lease", probe, timeout=timeout, interval=0.1)

    def close(self) -> None:
        for replica in list(self.replicas):
            self.terminate(replica)
        self.balancer.stop()
        self.cluster.kubectl("delete", "validatingwebhookconfiguration", self.webhook_config,
                             "--ignore-not-found")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {r.operator.log_path.name} ---\n{r.operator.tail(lines)}" for r in self.replicas
        )


@contextlib.contextmanager
def replicas(cluster: Cluster, workdir: Path, count: int = 2, **kwargs: Any
             ) -> Iterator[Replicas]:
    the_replicas = Replicas(cluster, workdir, **kwargs)
    try:
        for _ in range(count):
            the_replicas.start()
        yield the_replicas
    finally:
        the_replicas.close()


def control_plane_module() -> Any:
    """tests/controlplane/cluster.py (a script, not a package module), loaded once."""
    import importlib.util

    if "alert_contacts_controlplane" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "alert_contacts_controlplane", REPO / "tests/controlplane/cluster.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["alert_contacts_controlplane"] = module
    return sys.modules["alert_contacts_controlplane"]


def cluster_objects(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    return {kind: cluster.list(kind) for kind in PLURALS}


def violations(cluster: Cluster, quota: int = 100) -> list[str]:
    """What is wrong with the whole cluster's status now, against the pure decision:

    - two Ready objects holding the same normalised mobile or email;
    - more Ready Contacts and DingTalkBots than the quota;
    - any object whose status differs from what ``plan_status`` (the pure
      function over the current set) wants, or is not for its current generation.
    """
    from alert_contacts.domain.plan import plan_status
    from alert_contacts.domain.records import record_of, secret_data
    from alert_contacts.domain.validation import validate_contact
    from alert_contacts.settings import Settings

    settings = Settings(quota=quota)
    objects = cluster_objects(cluster)
    found: list[str] = []
    owners: dict[tuple[str, str], str] = {}
    ready = 0
    for kind in ("Contact", "DingTalkBot"):
        for obj in objects[kind]:
            if (condition(obj, "Ready") or {}).get("status") != "True":
                continue
            ready += 1
            name = f"{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
            for field_, value in ((obj.get("status") or {}).get("normalized") or {}).items():
                if value and (field_, value) in owners:
                    found.append(f"{field_} {value}: Ready in {owners[(field_, value)]} and {name}")
                owners.setdefault((field_, value), name)
    if ready > quota:
        found.append(f"{ready} Ready contacts and bots exceed the quota of {quota}")
    secrets = {
        (s.metadata.namespace, s.metadata.name): secret_data(
            cluster.api.sanitize_for_serialization(s))
        for s in cluster.core.list_secret_for_all_namespaces().items
        if (s.type or "Opaque") == "Opaque"
    }
    plan = plan_status(
        [record_of("Contact", o, validate_contact(o.get("spec") or {}, settings))
         for o in objects["Contact"]],
        [record_of("DingTalkBot", o) for o in objects["DingTalkBot"]],
        [record_of("ContactGroup", o) for o in objects["ContactGroup"]],
        secrets, settings, "2026-01-01T00:00:00Z",
    )
    found += [f"{w.ref}: status disagrees with the decision ({w.patch})" for w in plan.writes]
    return found


def wait_converged(cluster: Cluster, timeout: float, quota: int = 100) -> float:
    """Wait until no violation remains; return the seconds it took."""
    started = time.monotonic()
    try:
        wait_until("every object's status to agree with the pure decision",
                   lambda: not violations(cluster, quota) or None, timeout=timeout, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + "\n".join(violations(cluster, quota))) from None
    return time.monotonic() - started
