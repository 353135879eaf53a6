"""The operator image (``make image``), run exactly as the chart's Deployment runs it.

Everything the container gets comes from the rendered chart (``helm template``):
the image, command and args, the Pod's user, group and fsGroup, the container's
security context (read-only root filesystem, no capabilities, no privilege
escalation, the runtime's default seccomp profile), memory limit, environment,
the webhook certificate Secret mounted as the chart mounts it, the /tmp
emptyDir, and the identity of the chart's ServiceAccount, bound by the chart's
ClusterRole, as a kubelet would give it: a token, the cluster CA and the
namespace at /var/run/secrets/kubernetes.io/serviceaccount, and
KUBERNETES_SERVICE_HOST/PORT. :func:`podman_run` translates the Pod spec and
refuses any field it does not know, so a chart change cannot slip past.

There is no kubelet: podman (runc, with rlimits inside the machine's) runs the
container on the host's network, which here means loopback only; the chart is
rendered with free ports so that parallel runs do not collide. As in
test_chart.py, the chart's Service is made an ExternalName for ``localhost``
so that the API server calls the chart's ValidatingWebhookConfiguration's
webhook in the container, verifying the chart's certificate.

The chart is rendered with its ``delivery`` values set as a user of a private
DingTalk would set them (``helm template --set``): the receiver's token from a
Secret the test creates, the SMTP settings from another, the extra-CA ConfigMap
holding the test CA (fakes.py), and the fake DingTalk's ``localhost:PORT`` among
``dingtalkHosts``. So the same container also receives from a real Alertmanager
and delivers to the fake DingTalk and the SMTP server on loopback.

Not covered, for want of a kubelet: scheduling fields, image pulls, restarts
on a failing liveness probe, the rollout strategy and replica count (one
container runs), a preStop hook, Service routing by selector, and the
kubelet's token rotation. (``podman kube play`` reads a
Deployment too, but not its ServiceAccount token nor Secrets from the API, and
it ignores probes' effects and seccomp/fsGroup details; translating the spec
here keeps every field checked.)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.alertmanager import Alertmanager, alert
from tests.e2e.delivery import cn_member, local_time, make_bot, make_group, messages_with
from tests.e2e.fakes import FakeDingTalk, LocalCA, SmtpServer
from tests.e2e.harness import (
    REPO,
    Cluster,
    Operator,
    create_plain_pod,
    free_port,
    put_secret,
    refusal,
    unique_email,
    unique_mobile,
    unique_token,
    wait_for_condition,
    wait_until,
)
from tests.e2e.test_chart import CHART, KUBE_VERSION, documents, helm, the
from tests.e2e.test_metrics import Samples, scrape, value

IMAGE = os.environ.get("IMAGE", "localhost/alert-contacts-operator:dev")
RELEASE = "image-e2e"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# podman with runc and the machine's rlimits (crun fails on hybrid cgroup v1 hosts).
PODMAN_RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=1024:1024",
                  "--ulimit", "nproc=1024:1024"]

Doc = dict[str, Any]
# The chart's values that name a port the container listens on.
PORT_VALUES = ("webhook.port", "health.port", "metrics.port", "delivery.receiver.port")
# What the chart's delivery values name, created by the test as an administrator would.
RECEIVER_SECRET = "alertmanager-receiver"
SMTP_SECRET = "alert-contacts-smtp"
EXTRA_CA_CONFIGMAP = "internal-ca"


def has_value(values: Doc, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def podman(*args: str, check: bool = True, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.fail("podman is missing: apt-get install podman runc (.ci/run does)")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr}")
    return result


def image_is_current() -> None:
    """The image holds this tree's package: a stale image would test old code."""
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: run `make image` (`make test` does)")
    script = (
        "import hashlib, json, pathlib, alert_contacts; "
        "root = pathlib.Path(alert_contacts.__file__).parent; "
        "print(json.dumps({str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()"
        " for p in sorted(root.rglob('*.py'))}))"
    )
    inside = json.loads(podman("run", "--rm", *PODMAN_RUNTIME, "--network", "none",
                               "--entrypoint", "python", IMAGE, "-c", script).stdout)
    root = REPO / "operator/alert_contacts"
    here = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.py"))}
    assert inside == here, f"{IMAGE} was built from other sources: run `make image`"


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


# Pod fields that only a scheduler or kubelet acts on, with nothing to run here.
SCHEDULING = {"nodeSelector", "affinity", "tolerations", "priorityClassName",
              "imagePullSecrets", "topologySpreadConstraints"}


def podman_run(pod: Doc, name: str, mounts: dict[str, Path], env: dict[str, str]) -> list[str]:
    """``podman run`` arguments for the Pod's one container, field by field.

    ``mounts`` maps each volume name (and the ServiceAccount token's directory)
    to a host directory holding what the kubelet would put there; ``env`` is
    the container's environment as the kubelet resolves it (:func:`pod_env`).
    """
    unknown = set(pod) - SCHEDULING - {
        "serviceAccountName", "enableServiceLinks", "securityContext", "containers", "volumes",
        "terminationGracePeriodSeconds"}
    assert not unknown, f"the chart's Pod sets {unknown}: translate it here"
    (container,) = pod["containers"]
    unknown = set(container) - {
        "name", "image", "imagePullPolicy", "command", "args", "ports", "env", "startupProbe",
        "livenessProbe", "readinessProbe", "resources", "securityContext", "volumeMounts",
        "lifecycle"}
    assert not unknown, f"the chart's container sets {unknown}: translate it here"
    # A preStop sleep delays only the kubelet's SIGTERM on shutdown, which no test here does.
    assert set(container.get("lifecycle", {})) <= {"preStop"}, container["lifecycle"]
    assert set(container.get("lifecycle", {}).get("preStop", {})) <= {"sleep"}

    args = ["run", "--detach", "--name", name, *PODMAN_RUNTIME, "--network", "host"]
    pod_sc = pod["securityContext"]
    assert set(pod_sc) <= {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup",
                           "seccompProfile"}, pod_sc
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    args += ["--user", f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}",
             "--group-add", str(pod_sc["fsGroup"])]
    # RuntimeDefault is the container runtime's own profile: podman's default.
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}

    sc = container["securityContext"]
    assert set(sc) <= {"allowPrivilegeEscalation", "readOnlyRootFilesystem", "privileged",
                       "capabilities"}, sc
    assert sc["privileged"] is False
    if sc["allowPrivilegeEscalation"] is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc["readOnlyRootFilesystem"]:
        # No tmpfs of podman's own on /tmp, /run, /var/tmp: only the chart's volumes.
        args += ["--read-only", "--read-only-tmpfs=false"]
    args += [f"--cap-drop={c}" for c in sc["capabilities"].get("drop", [])]
    args += [f"--cap-add={c}" for c in sc["capabilities"].get("add", [])]

    limits = container["resources"].get("limits", {})
    assert set(limits) <= {"memory", "cpu"}, limits
    if "memory" in limits:
        args += ["--memory", str(memory_bytes(limits["memory"]))]

    for key, val in env.items():
        args += ["--env", f"{key}={val}"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert set(mount) <= {"name", "mountPath", "readOnly"}, f"{mount}: translate it here"
        volume = volumes[mount["name"]]
        # Whole volumes, every key a file: no items, subPath or optional sources.
        known = {"secret": {"secretName", "defaultMode"}, "configMap": {"name", "defaultMode"},
                 "emptyDir": {"sizeLimit"}}
        (kind,) = set(volume) - {"name"}
        assert kind in known and set(volume[kind]) <= known[kind], (
            f"volume {volume}: translate it here")
        if "emptyDir" in volume:
            size = memory_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
            args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},"
                     f"tmpfs-size={size},tmpfs-mode=1777"]
        elif "secret" in volume or "configMap" in volume:
            assert mount.get("readOnly") is True, mount
            args += ["--volume", f"{mounts[mount['name']]}:{mount['mountPath']}:ro"]
        else:
            raise AssertionError(f"volume {volume}: translate it here")
    # The kubelet's projected ServiceAccount token (automountServiceAccountToken).
    args += ["--volume", f"{mounts['serviceaccount']}:{SA_DIR}:ro"]

    if "terminationGracePeriodSeconds" in pod:
        args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]
    args += ["--entrypoint", json.dumps(container["command"]), container["image"],
             *container["args"]]
    return args


def pod_env(cluster: Cluster, container: Doc, pod_name: str, namespace: str,
            base: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it: values, the
    Downward API's name and namespace, and Secret keys (an optional one that is
    missing is left out)."""
    env = dict(base)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            field = source["fieldRef"]["fieldPath"]
            values = {"metadata.name": pod_name, "metadata.namespace": namespace}
            assert field in values, f"{var}: translate it here"
            env[var["name"]] = values[field]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            try:
                data = cluster.core.read_namespaced_secret(ref["name"], namespace).data or {}
            except kubernetes.client.exceptions.ApiException as e:
                assert e.status == 404 and ref.get("optional"), f"{var}: {e.status}"
                data = {}
            if ref["key"] in data:
                env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
            else:
                assert ref.get("optional"), f"{var}: key {ref['key']} missing"
        else:
            raise AssertionError(f"{var}: translate it here")
    return env


def write_secret_volume(data: dict[str, str], directory: Path, mode: int) -> Path:
    directory.mkdir()
    for key, encoded in data.items():
        path = directory / key
        path.write_bytes(base64.b64decode(encoded))
        path.chmod(mode)
    return directory


@dataclass
class Running:
    namespace: str
    docs: list[Doc]
    container: str
    deployment: Doc
    receiver_token: str

    @property
    def spec(self) -> Doc:
        (container,) = self.deployment["spec"]["template"]["spec"]["containers"]
        return dict(container)

    def port(self, name: str) -> int:
        (port,) = [p["containerPort"] for p in self.spec["ports"] if p["name"] == name]
        return int(port)

    def logs(self) -> str:
        result = podman("logs", self.container, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.container, *command, check=False)


def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def delivery_inputs(cluster: Cluster, namespace: str, values: Doc, ca: LocalCA,
                    dingtalk: FakeDingTalk, smtp: SmtpServer) -> tuple[str, list[str]]:
    """The Secrets and the ConfigMap the chart's delivery values name, created in the
    release namespace; returns the receiver's token and those values as ``--set``
    arguments."""
    delivery = values["delivery"]
    token = unique_token()
    put_secret(cluster, namespace, RECEIVER_SECRET, {delivery["receiver"]["token"]["key"]: token})
    # The Secret's keys are the ALERT_CONTACTS_SMTP_* variables' suffixes (values.yaml).
    put_secret(cluster, namespace, SMTP_SECRET, {
        var.removeprefix("ALERT_CONTACTS_SMTP_").lower(): val
        for var, val in smtp.env().items()})
    cluster.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": EXTRA_CA_CONFIGMAP, "namespace": namespace},
        "data": {delivery["extraCA"]["key"]: ca.file.read_text()}})
    hosts = ",".join([*values["dingtalkHosts"], dingtalk.host])
    settings = {
        "delivery.receiver.token.create": "false",
        "delivery.receiver.token.existingSecret": RECEIVER_SECRET,
        "delivery.smtpSecret": SMTP_SECRET,
        "delivery.extraCA.configMap": EXTRA_CA_CONFIGMAP,
        "dingtalkHosts": f"{{{hosts}}}",
    }
    return token, [arg for key, val in settings.items() for arg in ("--set", f"{key}={val}")]


@pytest.fixture(scope="module")
def running(
    cluster: Cluster, operator: Operator, ca: LocalCA, dingtalk: FakeDingTalk, smtp: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    image_is_current()
    workdir = tmp_path_factory.mktemp("image")
    namespace = f"image-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    repository, _, tag = IMAGE.rpartition(":")
    # Every port the chart's values set, moved to a free one on the host's loopback.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ports = {key: free_port() for key in PORT_VALUES if has_value(values, key)}
    receiver_token, delivery_values = delivery_inputs(cluster, namespace, values, ca, dingtalk,
                                                      smtp)
    rendered = helm("template", RELEASE, str(CHART), "--namespace", namespace,
                    "--kube-version", KUBE_VERSION,
                    "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                    *[arg for key, port in ports.items() for arg in ("--set", f"{key}={port}")],
                    *delivery_values)
    assert rendered.returncode == 0, rendered.stderr
    docs = documents(rendered.stdout)
    deployment = the(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    # The webhook and metrics Service (the receiver has its own, selecting the leader only).
    service = the(docs, "Service", f"{RELEASE}-alert-contacts-operator")
    vwc = the(docs, "ValidatingWebhookConfiguration")
    account = the(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]

    # The chart's objects, but the Deployment (no kubelet runs it), with its
    # Service routed to the container on the host's loopback (module docstring).
    webhook_port = ports["webhook.port"]
    service["spec"] = {
        "type": "ExternalName", "externalName": "localhost",
        "ports": [{**p, "port": webhook_port, "targetPort": webhook_port}
                  if p["name"] == "webhook" else p for p in service["spec"]["ports"]],
    }
    for hook in vwc["webhooks"]:
        hook["clientConfig"]["service"]["port"] = webhook_port
    applied = [d for d in docs if d["kind"] not in ("Deployment", "ValidatingWebhookConfiguration")]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(applied))

    # What the kubelet would mount and set.
    mounts: dict[str, Path] = {}
    for volume in pod["volumes"]:
        if "secret" in volume:
            source = volume["secret"]
            data = cluster.core.read_namespaced_secret(source["secretName"], namespace).data
        elif "configMap" in volume:
            source = volume["configMap"]
            plain = cluster.core.read_namespaced_config_map(source["name"], namespace).data
            data = {k: base64.b64encode(v.encode()).decode() for k, v in (plain or {}).items()}
        else:
            continue
        mounts[volume["name"]] = write_secret_volume(
            data or {}, workdir / volume["name"], source.get("defaultMode", 0o644))
    token = cluster.kubectl("create", "token", account["metadata"]["name"], "-n", namespace,
                            "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    ca = Path(admin["certificate-authority"]).read_text()
    mounts["serviceaccount"] = write_secret_volume(
        {"token": base64.b64encode(token.encode()).decode(),
         "ca.crt": base64.b64encode(ca.encode()).decode(),
         "namespace": base64.b64encode(namespace.encode()).decode()},
        workdir / "serviceaccount", 0o444)
    server = urllib.parse.urlsplit(admin["server"])
    name = f"alert-contacts-e2e-{uuid.uuid4().hex[:8]}"
    # The Pod the container runs "in" (POD_NAME): the leader labels it, with the chart's
    # Role (a 403 would show in the log checked below). It stays Pending: no kubelet.
    create_plain_pod(cluster, namespace, name)
    (container,) = pod["containers"]
    env = pod_env(cluster, container, name, namespace, {
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port)})

    run = Running(namespace, docs, name, deployment, receiver_token)
    operator.stop()  # two operators would race on status writes
    try:
        podman(*podman_run(pod, name, mounts, env))
        health = run.port("health")

        def synced() -> bool:
            state = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
            assert state.stdout.strip() == "true", f"the container stopped:\n{run.logs()}"
            try:
                status, body = http_get(health, "/healthz", timeout=2)
            except OSError:
                return False
            return status == 200 and bool(json.loads(body).get("synced"))

        wait_until("the container's /healthz to report it synced", synced, timeout=120,
                   interval=0.5)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(vwc))

        def admitting() -> bool:
            result = cluster.kubectl(
                "create", "--dry-run=server", "-o", "name", "-f", "-", check=False,
                input=json.dumps({
                    "apiVersion": "alerting.contacts.dev/v1alpha1", "kind": "Contact",
                    "metadata": {"name": "webhook-probe", "namespace": namespace},
                    "spec": {"email": "not-an-email"},
                }),
            )
            return "spec.email" in result.stderr and "admission webhook" in result.stderr

        wait_until("the chart's webhook configuration to reach the container", admitting,
                   timeout=60, interval=0.5)
        yield run
    finally:
        try:
            # Cluster-wide, with failurePolicy Fail: gone before its server is.
            cluster.kubectl("delete", "validatingwebhookconfiguration",
                            vwc["metadata"]["name"], "--ignore-not-found")
            for kind in ("contactgroups", "dingtalkbots", "contacts"):
                cluster.kubectl("delete", kind, "--all", "-n", namespace, "--wait=false")
            podman("rm", "--force", "--time", "10", name, check=False)
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false",
                            input=yaml.safe_dump_all(applied))
            # With the Secrets and the ConfigMap the delivery values name.
            cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        finally:
            operator.start()


# ---------------------------------------------------------------- the container as specified


def status_fields(run: Running) -> dict[str, str]:
    result = run.exec("cat", "/proc/1/status")
    assert result.returncode == 0, result.stderr
    return dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)


def test_runs_with_the_charts_user_and_security_context(running: Running) -> None:
    pod_sc = running.deployment["spec"]["template"]["spec"]["securityContext"]
    status = status_fields(running)
    assert status["Uid"].split()[0] == str(pod_sc["runAsUser"])
    assert status["Gid"].split()[0] == str(pod_sc["runAsGroup"])
    assert str(pod_sc["fsGroup"]) in status["Groups"].split()
    assert status["CapEff"].strip() == "0000000000000000", "capabilities: drop ALL"
    assert status["CapBnd"].strip() == "0000000000000000", "capabilities: drop ALL"
    assert status["NoNewPrivs"].strip() == "1", "allowPrivilegeEscalation: false"
    assert status["Seccomp"].strip() == "2", "seccompProfile: RuntimeDefault (filter mode)"


def test_root_filesystem_is_read_only_and_tmp_is_writable(running: Running) -> None:
    for path in ("/probe", "/opt/venv/probe", "/etc/probe"):
        result = running.exec("python", "-c", f"open({path!r}, 'w')")
        assert result.returncode != 0 and "Read-only file system" in result.stderr, path
    result = running.exec("python", "-c", "open('/tmp/probe', 'w').write('x')")
    assert result.returncode == 0, result.stderr


def test_webhook_certificate_is_mounted_read_only(running: Running) -> None:
    (cert_dir,) = [a.split("=", 1)[1] for a in running.spec["args"]
                   if a.startswith("--webhook-cert-dir=")]
    listed = running.exec("ls", cert_dir)
    assert {"tls.crt", "tls.key"} <= set(listed.stdout.split()), listed.stderr
    result = running.exec(
        "python", "-c", f"import os; print(os.statvfs({cert_dir!r}).f_flag & os.ST_RDONLY)")
    assert result.stdout.strip() == "1", f"{cert_dir} is not a read-only mount: {result}"


def test_probes_answer_as_the_charts_probes_expect(running: Running) -> None:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = running.spec[kind]["httpGet"]
        port = probe["port"]
        number = running.port(port) if isinstance(port, str) else int(port)
        status, body = http_get(number, probe["path"], timeout=running.spec[kind]["timeoutSeconds"])
        # A kubelet counts 200-399 as success.
        assert 200 <= status < 400, f"{kind} {probe['path']} on {port}: {status} {body}"


# ---------------------------------------------------------------- the operator's work


def test_contacts_bots_and_groups_reconcile(cluster: Cluster, running: Running) -> None:
    ns = running.namespace
    put_secret(cluster, ns, "oncall-bot", {
        "url": f"https://oapi.dingtalk.com/robot/send?access_token={unique_token()}"})
    digits, e164 = unique_mobile()
    cluster.create("Contact", ns, "alice", {"email": unique_email("alice"), "mobile": digits})
    cluster.create("DingTalkBot", ns, "oncall",
                   {"webhook": {"secretRef": {"name": "oncall-bot", "key": "url"}}})
    cluster.create("ContactGroup", ns, "sre", {"contacts": ["alice"], "dingTalkBots": ["oncall"]})
    alice = wait_for_condition(cluster, "Contact", ns, "alice", "Ready", "True", timeout=30)
    assert alice["status"]["normalized"]["mobile"] == e164  # phonenumbers' data is in the image
    wait_for_condition(cluster, "DingTalkBot", ns, "oncall", "Ready", "True", timeout=30)
    group = wait_for_condition(cluster, "ContactGroup", ns, "sre", "Ready", "True", timeout=30)
    assert group["status"]["members"]["ready"] == 2
    log = running.logs()
    for trouble in ("Forbidden", "forbidden", "Not enough permissions"):
        assert trouble not in log, f"{trouble!r} in the container's log:\n{log[-4000:]}"


def test_charts_webhook_refuses_a_malformed_email(cluster: Cluster, running: Running) -> None:
    status, message = refusal(lambda: cluster.create(
        "Contact", running.namespace, "carol", {"email": "carol.example.com"}))
    assert status == 422, message
    assert 'admission webhook "contacts.alerting.contacts.dev" denied the request' in message
    assert "spec.email" in message


def test_charts_webhook_refuses_a_duplicate(cluster: Cluster, running: Running) -> None:
    ns = running.namespace
    email = unique_email("dave")
    cluster.create("Contact", ns, "dave", {"email": email})
    wait_for_condition(cluster, "Contact", ns, "dave", "Ready", "True", timeout=30)
    status, message = refusal(lambda: cluster.create(
        "Contact", ns, "dave-again", {"email": email.upper()}))
    assert status == 409, message
    assert f"is already used by Contact {ns}/dave" in message


def test_metrics_scrape(cluster: Cluster, running: Running) -> None:
    ns = running.namespace
    cluster.create("Contact", ns, "erin", {"email": unique_email("erin")})
    wait_for_condition(cluster, "Contact", ns, "erin", "Ready", "True", timeout=30)
    (quota,) = [int(a.split("=", 1)[1]) for a in running.spec["args"]
                if a.startswith("--quota=")]
    port = running.port("metrics")

    def counted() -> Samples | None:
        samples = scrape(port)
        accepted = value(samples, "alert_contacts_objects", kind="Contact", reason="Accepted")
        return samples if accepted >= 1 else None

    samples = wait_until("the metrics to count an Accepted contact", counted, timeout=30)
    assert value(samples, "alert_contacts_quota_limit") == quota
    assert value(samples, "alert_contacts_quota_used") >= 1
    name = "alert_contacts_admission_decisions_total"
    assert value(samples, name, kind="Contact", result="Allowed") >= 1
    assert value(samples, name, kind="Contact", result="InvalidSpec") >= 1


# ---------------------------------------------------------------- delivery


def chart_env(running: Running, name: str) -> str:
    (value,) = [v["value"] for v in running.spec["env"] if v["name"] == name]
    return str(value)


def test_an_alertmanager_notification_reaches_dingtalk_and_email(
    cluster: Cluster, running: Running, dingtalk: FakeDingTalk, smtp: SmtpServer,
) -> None:
    ns = running.namespace
    grace = cn_member("grace")  # a mobile and an email
    bot = make_bot(cluster, dingtalk, ns, "pager", signed=True)
    group = make_group(cluster, ns, "paged", [grace], [bot])
    assert grace.email is not None and bot.secret is not None
    name = f"DiskFull{uuid.uuid4().hex[:6]}"
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    receiver = f"http://127.0.0.1:{running.port('receiver')}/v1/alerts/{ns}/{group.name}"

    with Alertmanager(receiver_url=receiver, token=running.receiver_token) as manager:
        manager.post_alerts([alert(name, {"severity": "critical"},
                                   {"summary": "/var is 97% full"}, starts=started)])
        try:
            # The container became the leader when the session operator stepped aside and
            # released the Lease, with no sends to this robot: nothing to wait for.
            wait_until("the alert at the fake DingTalk",
                       lambda: messages_with(dingtalk, bot.token, name), timeout=30)
            wait_until("the alert by email", lambda: [
                m for m in smtp.mails(to=grace.email) if name in m.subject], timeout=60)

            def answered_ok() -> bool:
                total, failed = manager.notification_counts()
                return total - failed >= 1

            wait_until("Alertmanager to record the receiver's success", answered_ok, timeout=30)
        except AssertionError as e:
            raise AssertionError(f"{e}\nAlertmanager's log:\n{manager.tail()}") from e

    # The fake DingTalk accepts only what the robot's signing secret signs.
    assert all(r.delivered for r in dingtalk.requests(bot.token)), dingtalk.requests(bot.token)
    (message,) = messages_with(dingtalk, bot.token, name)
    assert message.body["msgtype"] == "markdown" and name in message.title
    assert "/var is 97% full" in message.text
    assert message.at_mobiles == [grace.dingtalk_mobile]
    assert f"@{grace.dingtalk_mobile}" in message.text
    # In the chart's time zone, from the image's zone data.
    zone = chart_env(running, "ALERT_CONTACTS_TIMEZONE")
    assert f"Started: {local_time(started, zone)}" in message.text

    (mail,) = [m for m in smtp.mails(to=grace.email) if name in m.subject]
    assert mail.rcpt_tos == (grace.email,)
    assert mail.tls and mail.login == smtp.username
    # Bcc: the address is in the envelope only, in no header.
    assert grace.email not in " ".join(f"{k}: {v}" for k, v in mail.message.items())
    assert "/var is 97% full" in mail.part("plain")

    obj = wait_for_condition(cluster, "DingTalkBot", ns, bot.name, "Delivering", "True",
                             timeout=30)
    assert obj["status"]["delivery"]["result"] == "Delivered"
    status = (cluster.get("ContactGroup", ns, group.name) or {})["status"]
    assert status["delivery"]["dingtalk"]["result"] == "Delivered"
    assert status["delivery"]["email"]["result"] == "Delivered"
    log = running.logs()
    for secret in (running.receiver_token, bot.token, bot.secret, grace.email):
        assert secret not in log, "the container's log holds a token, secret or address"
