"""The shipped GitOps health checks: in step with the docs, and right on every kind of status.

The e2e test (tests/e2e/test_gitops_health.py) runs the same engines over real
objects; these cases cover each branch quickly, with statuses shaped as the
operator writes them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitops_health import GITOPS, argocd_health, argocd_scripts, flux_exprs, flux_health

REPO = Path(__file__).resolve().parents[2]
KINDS = ("Contact", "DingTalkBot", "ContactGroup")


def obj(kind: str = "Contact", generation: int = 1, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "alerting.contacts.dev/v1alpha1", "kind": kind,
                            "metadata": {"name": "x", "namespace": "n", "generation": generation}}
    if status:
        body["status"] = status
    return body


def cond(type_: str, status: str, reason: str = "R", message: str = "m") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


READY = [cond("Ready", "True", "Accepted", "valid, unique and within the quota"),
         cond("Valid", "True")]
STALLED = [cond("Ready", "False", "QuotaExceeded", "full"), cond("Stalled", "True",
                                                                  "QuotaExceeded", "full")]
RECONCILING = [cond("Ready", "False", "MembersMissing", "contact/bob does not exist"),
               cond("Reconciling", "True", "MembersMissing", "contact/bob does not exist")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("body", "argocd", "flux"), [
    (obj(), "Progressing", "Unevaluable"),
    (obj(observedGeneration=1), "Progressing", "Unevaluable"),
    (obj(generation=2, observedGeneration=1, conditions=READY), "Progressing", "InProgress"),
    (obj(observedGeneration=1, conditions=READY), "Healthy", "Current"),
    (obj(observedGeneration=1, conditions=STALLED), "Degraded", "Failed"),
    (obj(observedGeneration=1, conditions=RECONCILING), "Progressing", "InProgress"),
])
def test_every_status_maps_to_the_documented_health(
    kind: str, body: dict[str, Any], argocd: str, flux: str
) -> None:
    body = {**body, "kind": kind}
    assert argocd_health(body)[0] == argocd
    assert flux_health(body) == flux


def test_argocd_messages_say_why() -> None:
    assert argocd_health(obj(observedGeneration=1, conditions=STALLED)) == (
        "Degraded", "QuotaExceeded: full")
    assert argocd_health(obj(generation=3, observedGeneration=2, conditions=READY)) == (
        "Progressing", "the operator has not yet acted on generation 3")


def test_the_same_script_and_expressions_serve_all_three_kinds() -> None:
    scripts = argocd_scripts()
    assert sorted(scripts) == sorted(KINDS)
    lua = (GITOPS / "health.lua").read_text(encoding="utf-8")
    assert all(script == lua for script in scripts.values())
    exprs = flux_exprs()
    assert sorted(exprs) == sorted(KINDS)
    assert len({(e["inProgress"], e["failed"], e["current"]) for e in exprs.values()}) == 1


def _blocks(language: str) -> list[str]:
    text = (REPO / "docs/gitops.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_docs_show_exactly_the_shipped_files() -> None:
    assert (GITOPS / "health.lua").read_text(encoding="utf-8") in _blocks("lua")
    assert (GITOPS / "flux-kustomization.yaml").read_text(encoding="utf-8") in _blocks("yaml")


def test_docs_wait_recipe_waits_per_object() -> None:
    text = (REPO / "docs/gitops.md").read_text(encoding="utf-8")
    recipe = text.split("## Scripts and CI", 1)[1]
    assert "xargs -P" in recipe and "--all" not in re.sub(r"`[^`]*`", "", recipe.split("```")[1])


def test_shipped_yaml_parses() -> None:
    for name in ("argocd-cm.yaml", "flux-kustomization.yaml"):
        assert yaml.safe_load((GITOPS / name).read_text(encoding="utf-8"))["kind"]


def test_readme_says_what_is_true_about_gitops_and_the_local_control_plane() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "Argo CD and Flux understand it" not in readme  # they need the shipped checks
    assert "deploy/gitops/" in readme
    cluster_py = (REPO / "tests/controlplane/cluster.py").read_text(encoding="utf-8")
    assert "ALERT_CONTACTS_CLUSTER_STATE" in cluster_py and "ALERT_CONTACTS_CLUSTER_STATE" in readme
    deploy = (REPO / "deploy/README.md").read_text(encoding="utf-8")
    assert "--set image.digest=sha256:" in deploy
