"""A clean first start, right after the CRDs are applied, logs no error.

For a moment after a CRD is created the API server answers 429 "storage is
(re)initializing" (and 404 before the CRD is served): the operator waits that
out quietly. This test has a control plane of its own: the session's one has
had its CRDs for a long time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.e2e.conftest import controlplane
from tests.e2e.harness import REPO, Cluster, Operator, unique_email, wait_for_condition


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    kubeconfig = controlplane.up(tmp_path / "controlplane")
    try:
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        yield Cluster(Path(kubeconfig), api)
    finally:
        controlplane.down(tmp_path / "controlplane")


def test_first_start_right_after_the_crds_are_applied_logs_no_error(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    fresh_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    operator = Operator(fresh_cluster, tmp_path / "operator.log")
    operator.start(wait=False)  # no wait for Established: as a Helm install goes
    try:
        operator.wait_ready(timeout=120)
        fresh_cluster.core.create_namespace({"metadata": {"name": "first"}})
        fresh_cluster.create("Contact", "first", "alice", {"email": unique_email("first")})
        contact = wait_for_condition(fresh_cluster, "Contact", "first", "alice", "Ready", "True")
    finally:
        operator.stop()

    log = operator.log_path.read_text(errors="replace")
    errors = [line for line in log.splitlines() if re.search(r"\[(ERROR|CRITICAL) *\]", line)]
    assert not errors, "\n".join(errors[:20])
    assert "Traceback" not in log
    # Status is written under the operator's own field manager.
    managers = {(m["manager"], m.get("subresource")) for m in contact["metadata"]["managedFields"]}
    assert ("alert-contacts-operator", "status") in managers, managers
