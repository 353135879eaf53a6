"""e2e fixtures: one real control plane and one operator per session, a namespace per test.

The control plane is etcd + kube-apiserver + kube-controller-manager built
from Go modules (``make tools``), started fresh in a temporary directory for
the session. The CRDs
are installed from ``crds/`` with kubectl, and the operator runs through the
production entry point, ``python -m alert_contacts``.
"""

from __future__ import annotations

import importlib.util
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.e2e.fakes import FakeDingTalk, LocalCA, SmtpServer
from tests.e2e.harness import BIN, PLURALS, REPO, Cluster, Operator

_spec = importlib.util.spec_from_file_location("cluster", REPO / "tests/controlplane/cluster.py")
assert _spec is not None and _spec.loader is not None
controlplane = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(controlplane)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"):
        if not (BIN / tool).exists():
            pytest.fail(f"{BIN / tool} is missing: run `make tools` (or `make test`)")
    state = tmp_path_factory.mktemp("controlplane")
    kubeconfig = controlplane.up(state)
    try:
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        the_cluster = Cluster(Path(kubeconfig), api, state=state)
        the_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        the_cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds")
        )
        yield the_cluster
    finally:
        controlplane.down(state)


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator under test, with default settings (quota 100, region CN)."""
    the_operator = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    the_operator.start()
    try:
        yield the_operator
    finally:
        the_operator.stop()


# The delivery tests' peers, one set per test module: a test CA, the fake DingTalk
# server and the SMTP server (tests/e2e/fakes.py).
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def dingtalk(ca: LocalCA) -> Iterator[FakeDingTalk]:
    with FakeDingTalk(ca) as fake:
        yield fake


@pytest.fixture(scope="module")
def smtp(ca: LocalCA) -> Iterator[SmtpServer]:
    with SmtpServer(ca) as server:
        yield server


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, deleted afterwards.

    Uniqueness and quota are cluster-wide, so every test leaves the cluster
    without objects of ours: they are deleted at once (the namespace
    controller would take a few seconds), then the namespace itself.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"{slug}-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    for plural in PLURALS.values():
        cluster.kubectl("delete", plural, "--all", "-n", name, "--wait=false")
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the operator's log tail to a failing e2e test's report."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    # The delivery tests run their own operator (with a receiver) in place of the session's.
    operator = getattr(funcargs.get("delivery"), "operator", None) or funcargs.get("operator")
    if report.failed and isinstance(operator, Operator):
        report.sections.append(("operator log (tail)", operator.tail(80)))
    # test_image.py runs the operator in a container instead.
    container = funcargs.get("running")
    if report.failed and callable(getattr(container, "logs", None)):
        log = container.logs().splitlines()
        report.sections.append(("container log (tail)", "\n".join(log[-80:])))
