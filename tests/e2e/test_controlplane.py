"""The control plane the e2e tier runs on is the real, pinned release."""

from __future__ import annotations

import json
import re
import subprocess

from tests.e2e.harness import BIN, REPO, Cluster


def _pinned_kubernetes() -> str:
    gomod = (REPO / "tests/controlplane/kube/go.mod").read_text()
    match = re.search(r"k8s\.io/kubernetes (v\d+\.\d+\.\d+)", gomod)
    assert match, "k8s.io/kubernetes is not pinned in tests/controlplane/kube/go.mod"
    return match.group(1)


def test_apiserver_reports_the_pinned_release(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    pinned = _pinned_kubernetes()
    assert version["serverVersion"]["gitVersion"] == pinned
    assert version["clientVersion"]["gitVersion"] == pinned


def test_openapi_v3_is_served_with_our_group(cluster: Cluster) -> None:
    paths = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert "apis/alerting.contacts.dev/v1alpha1" in paths


def test_rbac_authorization_is_on(cluster: Cluster) -> None:
    # An unprivileged identity is refused: RBAC, not AlwaysAllow, is in force.
    result = cluster.kubectl(
        "auth", "can-i", "list", "contacts.alerting.contacts.dev",
        "--as=system:serviceaccount:default:nobody", check=False,
    )
    assert result.stdout.strip() == "no"


def test_helm_runs() -> None:
    gomod = (REPO / "tests/controlplane/helm/go.mod").read_text()
    pinned = re.search(r"helm\.sh/helm/v3 (v\d+\.\d+\.\d+)", gomod)
    assert pinned
    out = subprocess.run([str(BIN / "helm"), "version", "--short"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(pinned.group(1))
