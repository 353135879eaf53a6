"""The Helm chart on the real control plane.

- ``helm lint`` is clean and the API server accepts everything the chart renders;
- the operator runs with exactly the chart's RBAC (its ServiceAccount's token,
  its ClusterRole and binding) and reconciles contacts, bots and groups, while
  anything outside those rules is forbidden;
- the chart's ValidatingWebhookConfiguration, with the chart's own generated
  certificate, admits and refuses through the operator's webhook server.

There is no kubelet here, so the operator runs as a local process in service
mode, serving the chart's certificate. The API server resolves a webhook's
``service:`` reference to the Service's ClusterIP, or, for a Service of type
ExternalName, to its ``externalName`` and the webhook's port
(``ResolveCluster`` in k8s.io/apiserver/pkg/util/proxy): the test makes the
chart's Service an ExternalName for ``localhost``, so the API server calls the
local process while verifying the certificate for
``<service>.<namespace>.svc``, as in a cluster.

The session operator is stopped meanwhile (two operators would race on
status writes) and restarted at the end.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.harness import (
    BIN,
    REPO,
    Cluster,
    Operator,
    free_port,
    refusal,
    unique_mobile,
    wait_for_condition,
    wait_until,
)

CHART = REPO / "deploy/helm/alert-contacts-operator"
KUBE_VERSION = "v1.35.4"  # the control plane the chart is rendered for
RELEASE = "chart-e2e"

Doc = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not (BIN / "helm").exists():
        pytest.fail(f"{BIN / 'helm'} is missing: run `make tools`")
    return subprocess.run(
        [str(BIN / "helm"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(namespace: str, *extra: str) -> str:
    result = helm("template", RELEASE, str(CHART), "--namespace", namespace,
                  "--kube-version", KUBE_VERSION, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def the(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in the chart, got {len(found)}"
    return found[0]


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("values", [
    [],
    ["webhook.certManager.enabled=true", "metrics.serviceMonitor.enabled=true"],
    ["webhook.enabled=false", "metrics.enabled=false", "rbac.aggregateToDefaultRoles=false"],
], ids=["defaults", "cert-manager", "minimal"])
def test_helm_lint(values: list[str]) -> None:
    args = [arg for v in values for arg in ("--set", v)]
    result = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_api_server_accepts_the_rendered_chart(cluster: Cluster, namespace: str) -> None:
    variants = {
        "defaults": render(namespace, "--include-crds"),
        "without webhook": render(namespace, "--include-crds", "--set", "webhook.enabled=false"),
    }
    # cert-manager's kinds are not installed here; everything else must be accepted.
    with_cert_manager = documents(render(namespace, "--set", "webhook.certManager.enabled=true"))
    variants["cert-manager"] = yaml.safe_dump_all(
        d for d in with_cert_manager if not d["apiVersion"].startswith("cert-manager.io/")
    )
    for variant, text in variants.items():
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False)
        assert result.returncode == 0, f"{variant}:\n{result.stderr}"
        applied = {line.split()[0].split("/")[0] for line in result.stdout.splitlines()}
        expected = {
            f"{d['kind'].lower()}.{d['apiVersion'].split('/')[0]}" if "/" in d["apiVersion"]
            else d["kind"].lower()
            for d in documents(text)
        }
        assert applied == expected, variant


def test_upgrade_keeps_the_webhook_certificate(cluster: Cluster, namespace: str) -> None:
    """`helm upgrade` reuses the generated certificate (found with `lookup`); deleting
    the Secret and upgrading rotates it, and the Pod template changes with it."""
    release = "upgrade-e2e"
    fullname = f"{release}-alert-contacts-operator"

    def run_helm(command: str, *args: str) -> None:
        result = subprocess.run(
            [str(BIN / "helm"), command, release, *args, "--namespace", namespace],
            capture_output=True, text=True, timeout=60, env=cluster.env(), check=False,
        )
        assert result.returncode == 0, result.stderr

    def installed() -> tuple[str, str, str, list[str]]:
        secret = cluster.core.read_namespaced_secret(f"{fullname}-webhook-tls", namespace)
        vwc = json.loads(cluster.kubectl(
            "get", "validatingwebhookconfiguration", fullname, "-o", "json").stdout)
        deployment = json.loads(cluster.kubectl(
            "get", "deployment", fullname, "-n", namespace, "-o", "json").stdout)
        template = deployment["spec"]["template"]
        (bundle,) = {h["clientConfig"]["caBundle"] for h in vwc["webhooks"]}
        assert bundle == secret.data["ca.crt"]
        return (secret.data["tls.crt"], bundle,
                template["metadata"]["annotations"]["checksum/webhook-tls"],
                template["spec"]["containers"][0]["args"])

    # No kubelet here: the Pod never runs, and the configuration must not outlive the test.
    try:
        run_helm("install", str(CHART))
        cert, bundle, checksum, _ = installed()
        run_helm("upgrade", str(CHART), "--reuse-values", "--set", "quota=5")
        again = installed()
        assert again[:3] == (cert, bundle, checksum)
        assert "--quota=5" in again[3]

        cluster.core.delete_namespaced_secret(f"{fullname}-webhook-tls", namespace)
        run_helm("upgrade", str(CHART), "--reuse-values")
        rotated = installed()
        assert rotated[0] != cert and rotated[1] != bundle and rotated[2] != checksum
    finally:
        subprocess.run(
            [str(BIN / "helm"), "uninstall", release, "--namespace", namespace],
            capture_output=True, timeout=60, env=cluster.env(), check=False,
        )
        cluster.kubectl("delete", "validatingwebhookconfiguration", fullname,
                        "--ignore-not-found")


# ---------------------------------------------------------------- the operator with the chart


@dataclass
class ChartOperator:
    namespace: str
    docs: list[Doc]
    kubeconfig: Path  # the chart's ServiceAccount's token
    process: Operator

    def client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(str(self.kubeconfig))

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )

    def can_i(self, *args: str) -> bool:
        result = self.kubectl("auth", "can-i", *args)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    """A kubeconfig for the same API server (and CA) as the admin's, with ``token``."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    }))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def chart_operator(
    cluster: Cluster, operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartOperator]:
    workdir = tmp_path_factory.mktemp("chart")
    namespace = f"chart-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    docs = documents(render(namespace))
    account = the(docs, "ServiceAccount")
    role = the(docs, "ClusterRole", f"{RELEASE}-alert-contacts-operator")
    binding = the(docs, "ClusterRoleBinding")
    lease_role, lease_binding = the(docs, "Role"), the(docs, "RoleBinding")
    (operator_container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    lease_args = [a for a in operator_container["args"] if a.startswith(("--lease", "--leader"))]
    # The webhook and metrics Service (the receiver has its own, selecting the leader only).
    service = the(docs, "Service", f"{RELEASE}-alert-contacts-operator")
    vwc = the(docs, "ValidatingWebhookConfiguration")
    tls = the(docs, "Secret", f"{RELEASE}-alert-contacts-operator-webhook-tls")["data"]

    # The webhook server: the chart's certificate, on a free local port.
    port = free_port()
    certs = workdir / "webhook-tls"
    certs.mkdir()
    for name in ("tls.crt", "tls.key"):
        (certs / name).write_bytes(base64.b64decode(tls[name]))
    (certs / "tls.key").chmod(0o600)
    # The chart's Service and configuration, routed to it (see the module docstring).
    service["spec"] = {
        "type": "ExternalName", "externalName": "localhost",
        "ports": [
            {**p, "port": port, "targetPort": port} if p["name"] == "webhook" else p
            for p in service["spec"]["ports"]
        ],
    }
    for hook in vwc["webhooks"]:
        assert hook["clientConfig"]["service"]["port"] == 443  # what the chart's Service serves
        hook["clientConfig"]["service"]["port"] = port
    created = [account, role, binding, lease_role, lease_binding, service, vwc]

    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(created))
    token = cluster.kubectl(
        "create", "token", account["metadata"]["name"], "-n", namespace, "--duration=1h"
    ).stdout.strip()
    kubeconfig = token_kubeconfig(cluster, token, workdir / "kubeconfig")
    process = Operator(
        cluster, workdir / "operator.log",
        args=["--webhook=service", f"--webhook-port={port}", f"--webhook-cert-dir={certs}",
              *lease_args],
        # The Lease lives in the Pod's namespace (the downward API sets it in the chart).
        env={"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace},
    )
    operator.stop()
    try:
        # Ready means synced and admitting through the chart's configuration.
        process.start()
        yield ChartOperator(namespace, docs, kubeconfig, process)
    finally:
        try:
            process.stop()
            # The configuration is cluster-wide, and its webhook is gone now.
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false",
                            input=yaml.safe_dump_all([vwc]))
            for kind in ("contactgroups", "dingtalkbots", "contacts", "secrets"):
                cluster.kubectl("delete", kind, "--all", "-n", namespace, "--wait=false")
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false",
                            input=yaml.safe_dump_all(created[:-1]))
        finally:
            operator.start()


def test_operator_reconciles_with_only_the_charts_rbac(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    ns = chart_operator.namespace
    token = uuid.uuid4().hex + uuid.uuid4().hex
    cluster.core.create_namespaced_secret(ns, {
        "metadata": {"name": "oncall-bot"},
        "stringData": {"url": f"https://oapi.dingtalk.com/robot/send?access_token={token}"},
    })
    cluster.create("Contact", ns, "alice", {"email": unique_email("alice")})
    cluster.create("DingTalkBot", ns, "oncall", {
        "webhook": {"secretRef": {"name": "oncall-bot", "key": "url"}},
    })
    cluster.create("ContactGroup", ns, "sre", {"contacts": ["alice"], "dingTalkBots": ["oncall"]})
    for kind, name in (("Contact", "alice"), ("DingTalkBot", "oncall"), ("ContactGroup", "sre")):
        wait_for_condition(cluster, kind, ns, name, "Ready", "True")

    # The Ready transition was announced with an Event (create on events).
    def announced() -> bool:
        events = cluster.core.list_namespaced_event(
            ns, field_selector="involvedObject.name=alice"
        ).items
        return any(e.source.component == "alert-contacts-operator" for e in events)

    wait_until("an Event for contact alice", announced, timeout=10)
    log = chart_operator.process.tail(2000)
    for trouble in ("Forbidden", "forbidden", "Not enough permissions", "could not post"):
        assert trouble not in log, f"{trouble!r} in the operator's log:\n{log}"


def test_charts_webhook_admits_a_valid_contact(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    ns = chart_operator.namespace
    d, _ = unique_mobile()
    created = cluster.create("Contact", ns, "bob", {"mobile": f"+86 {d[:3]} {d[3:7]} {d[7:]}"})
    assert created["metadata"]["name"] == "bob"
    wait_for_condition(cluster, "Contact", ns, "bob", "Ready", "True")


def test_charts_webhook_refuses_a_malformed_email(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    status, message = refusal(lambda: cluster.create(
        "Contact", chart_operator.namespace, "carol", {"email": "carol.example.com"}
    ))
    assert status == 422, message
    assert 'admission webhook "contacts.alerting.contacts.dev" denied the request' in message
    assert "spec.email" in message


def test_charts_webhook_refuses_a_duplicate(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    ns = chart_operator.namespace
    email = unique_email("dave")
    cluster.create("Contact", ns, "dave", {"email": email})
    wait_for_condition(cluster, "Contact", ns, "dave", "Ready", "True")
    status, message = refusal(lambda: cluster.create(
        "Contact", ns, "dave-again", {"email": email.upper()}
    ))
    assert status == 409, message
    assert 'admission webhook "contacts.alerting.contacts.dev" denied the request' in message
    assert f"is already used by Contact {ns}/dave" in message


def test_actions_outside_the_charts_rules_are_forbidden(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    ns = chart_operator.namespace
    cluster.create("Contact", ns, "erin", {"email": unique_email("erin")})
    op = chart_operator
    # What the rules grant ...
    assert op.can_i("watch", "contacts.alerting.contacts.dev", "--all-namespaces")
    assert op.can_i("patch", "contacts.alerting.contacts.dev", "--subresource=status", "-n", ns)
    assert op.can_i("list", "secrets", "--all-namespaces")
    assert op.can_i("create", "events", "-n", ns)
    # ... and what they do not.
    for verb, resource in (
        ("delete", "contacts.alerting.contacts.dev"),
        ("update", "contacts.alerting.contacts.dev"),
        ("create", "dingtalkbots.alerting.contacts.dev"),
        ("get", "secrets"),
        ("create", "secrets"),
        ("list", "configmaps"),
        ("create", "pods"),
    ):
        assert not op.can_i(verb, resource, "-n", ns), f"{verb} {resource}"
    for verb in ("create", "patch", "delete"):
        assert not op.can_i(verb, "validatingwebhookconfigurations")
    assert not op.can_i("patch", "customresourcedefinitions")

    # Actual requests with the operator's token get 403.
    api = op.client()
    status, message = refusal(lambda: kubernetes.client.CustomObjectsApi(api)
                              .delete_namespaced_custom_object(
                                  "alerting.contacts.dev", "v1alpha1", ns, "contacts", "erin"))
    assert status == 403, message
    status, message = refusal(lambda: kubernetes.client.CoreV1Api(api)
                              .list_namespaced_config_map(ns))
    assert status == 403, message
    assert cluster.get("Contact", ns, "erin") is not None
