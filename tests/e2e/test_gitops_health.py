"""GitOps health, proven on real statuses: the shipped Argo CD Lua check, Flux's
healthCheckExprs and kstatus (sigs.k8s.io/cli-utils) over objects the operator judged
(Ready, held by the quota, invalid, waiting for a Secret or members, just edited, not
yet seen), and the docs' `kubectl wait` recipe.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    BIN,
    REPO,
    Cluster,
    Operator,
    manifest,
    unique_email,
    wait_for_condition,
)
from tests.gitops_health import KSTATUS, argocd_health, flux_health, kstatus

# name -> (Argo CD, Flux, kstatus alone)
EXPECTED = {
    "ready": ("Healthy", "Current", "Current"),
    "complete-group": ("Healthy", "Current", "Current"),
    "waiting-group": ("Progressing", "InProgress", "InProgress"),
    "secretless-bot": ("Degraded", "Failed", "Failed"),
    "just-edited": ("Progressing", "InProgress", "InProgress"),
    # No status yet: Flux's expressions cannot be evaluated, so Flux waits; kstatus
    # alone calls it Current, which is why the docs add healthCheckExprs.
    "unseen": ("Progressing", "Unevaluable", "Current"),
    "held": ("Degraded", "Failed", "Failed"),
    "invalid": ("Degraded", "Failed", "Failed"),
}


def captured(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    obj = cluster.get(kind, namespace, name)
    assert obj is not None, f"{kind} {namespace}/{name} is gone"
    return obj


def test_health_of_real_objects_in_argocd_flux_and_kstatus(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    if not KSTATUS.exists():
        pytest.fail(f"{KSTATUS} is missing: run `make tools`")
    objects: dict[str, dict[str, Any]] = {}
    apply = lambda kind, name, spec: cluster.kubectl(  # noqa: E731
        "apply", "-f", "-", input=manifest(kind, namespace, name, spec))

    # What the operator says with the webhook on.
    apply("Contact", "ready", {"email": unique_email("ready")})
    apply("ContactGroup", "complete-group", {"contacts": ["ready"]})
    apply("ContactGroup", "waiting-group", {"contacts": ["ready", "nobody"]})
    apply("DingTalkBot", "secretless-bot",
          {"webhook": {"secretRef": {"name": "absent", "key": "url"}}})
    for kind, name, status in (("Contact", "ready", "True"),
                               ("ContactGroup", "complete-group", "True"),
                               ("ContactGroup", "waiting-group", "False"),
                               ("DingTalkBot", "secretless-bot", "False")):
        objects[name] = wait_for_condition(cluster, kind, namespace, name, "Ready", status)

    # With the operator down: an edit it has not seen, an object it has never seen.
    operator.stop()
    try:
        cluster.patch_spec("Contact", namespace, "ready", {"displayName": "Edited"})
        objects["just-edited"] = captured(cluster, "Contact", namespace, "ready")
        assert objects["just-edited"]["metadata"]["generation"] == 2
        apply("Contact", "unseen", {"email": unique_email("unseen")})
        objects["unseen"] = captured(cluster, "Contact", namespace, "unseen")
        assert "status" not in objects["unseen"]

        # Without the webhook and with no room in the quota: held and invalid objects.
        strict = Operator(cluster, tmp_path / "operator.log", args=["--webhook=none"],
                          env={"ALERT_CONTACTS_QUOTA": "0"})
        strict.start()
        try:
            apply("Contact", "held", {"email": unique_email("held")})
            apply("Contact", "invalid", {"email": "not-an-email"})
            objects["held"] = wait_for_condition(cluster, "Contact", namespace, "held", "Ready",
                                                 "False", reason="QuotaExceeded")
            objects["invalid"] = wait_for_condition(cluster, "Contact", namespace, "invalid",
                                                    "Ready", "False", reason="InvalidSpec")
        finally:
            strict.stop()
    finally:
        operator.start()

    names = list(EXPECTED)
    # The just-edited contact is "ready" in the cluster: match kstatus' answers by position.
    verdicts = kstatus(objects[n] for n in names)
    got = {
        name: (argocd_health(objects[name])[0], flux_health(objects[name]),
               verdict["status"])
        for name, verdict in zip(names, verdicts, strict=True)
    }
    assert got == EXPECTED, got
    # Argo CD shows why: the reason and the operator's message.
    assert argocd_health(objects["held"])[1].startswith("QuotaExceeded: quota of 0 contacts")
    assert argocd_health(objects["waiting-group"])[1].startswith("MembersMissing: ")


def docs_wait_recipe() -> str:
    """The shell block of docs/gitops.md's "Scripts and CI" section."""
    text = (REPO / "docs/gitops.md").read_text(encoding="utf-8")
    section = text.split("## Scripts and CI", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, "no sh block under 'Scripts and CI'"
    return match.group(1)


def test_the_docs_wait_recipe_waits_for_each_object_on_its_own(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "DingTalkBot", namespace, "stalled", {"webhook": {"secretRef": {"name": "no",
                                                                         "key": "url"}}}))
    for name in ("a", "b"):
        cluster.kubectl("apply", "-f", "-", input=manifest(
            "Contact", namespace, name, {"email": unique_email(name)}))
    wait_for_condition(cluster, "DingTalkBot", namespace, "stalled", "Ready", "False")
    script = (docs_wait_recipe().replace("team-a", namespace).replace("--timeout=60s",
                                                                      "--timeout=8s")
              .replace("kubectl apply -f alerting/\n", ""))
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                            env=cluster.env(PATH=f"{BIN}:/usr/bin:/bin"), check=False)
    took = time.monotonic() - started
    assert result.returncode != 0, result.stdout  # not everything is Ready...
    met = set(re.findall(r"contact\.alerting\.contacts\.dev/(\w+) condition met", result.stdout))
    assert met == {"a", "b"}, result.stdout + result.stderr  # ...but the Ready ones say so
    assert "stalled" in result.stderr and "timed out" in result.stderr
    assert took < 60, f"the recipe took {took:.0f}s: the waits did not run side by side"
    # The listing at the end says which one is not Ready, and why.
    assert re.search(r"stalled\s.*False\s+SecretNotFound", result.stdout), result.stdout
