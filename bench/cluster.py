"""A local control plane for one benchmark run: CRDs applied, one namespace made."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import kubernetes
from tests.e2e.conftest import controlplane
from tests.e2e.harness import REPO, Cluster


@contextlib.contextmanager
def local_cluster(prefix: str, namespace: str) -> Iterator[tuple[Cluster, Path]]:
    """A fresh control plane in a new work directory (stopped on exit), and that directory."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    kubeconfig = controlplane.up(work / "cp")
    try:
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        cluster = Cluster(Path(kubeconfig), api)
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
        cluster.core.create_namespace({"metadata": {"name": namespace}})
        yield cluster, work
    finally:
        controlplane.down(work / "cp")
