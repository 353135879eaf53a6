"""The shipped GitOps health checks, run by real engines: what Argo CD, Flux and kstatus say.

- Argo CD runs a resource's Lua health script with gopher-lua (Lua 5.1) and the
  object as the global ``obj``: here the same script runs in Lua 5.1 through lupa.
- Flux evaluates ``healthCheckExprs`` with cel-go, after its own observedGeneration
  check, in the order inProgress, failed, current (RFC 0009; none true: InProgress;
  an expression that cannot be evaluated keeps Flux waiting): here the same
  expressions run in a CEL implementation (common-expression-language) in that order.
- kstatus is sigs.k8s.io/cli-utils itself, built from Go modules (bin/kstatus).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cel
import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[1]
GITOPS = REPO / "deploy/gitops"
KSTATUS = REPO / "bin/kstatus"
GROUP = "alerting.contacts.dev"


def argocd_scripts() -> dict[str, str]:
    """Kind -> the Lua script argocd-cm.yaml installs for it."""
    data = yaml.safe_load((GITOPS / "argocd-cm.yaml").read_text(encoding="utf-8"))["data"]
    prefix = f"resource.customizations.health.{GROUP}_"
    return {key.removeprefix(prefix): script for key, script in data.items()
            if key.startswith(prefix)}


def argocd_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) of Argo CD's health assessment of ``obj``."""
    script = argocd_scripts()[str(obj["kind"])]
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    lua.globals().obj = lua.table_from(json.loads(json.dumps(obj)), recursive=True)
    result = lua.execute(script)
    return str(result["status"]), str(result["message"])


def flux_exprs() -> dict[str, dict[str, str]]:
    """Kind -> its healthCheckExprs entry in the shipped Kustomization."""
    kustomization = yaml.safe_load(
        (GITOPS / "flux-kustomization.yaml").read_text(encoding="utf-8"))
    return {entry["kind"]: entry for entry in kustomization["spec"]["healthCheckExprs"]}


def flux_health(obj: Mapping[str, Any]) -> str:
    """InProgress, Failed or Current as Flux's CEL status evaluator decides, or
    ``Unevaluable`` when an expression fails (Flux keeps waiting, up to its timeout)."""
    exprs = flux_exprs()[str(obj["kind"])]
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if "observedGeneration" in status and status["observedGeneration"] != generation:
        return "InProgress"
    context = json.loads(json.dumps(obj))
    for key, verdict in (("inProgress", "InProgress"), ("failed", "Failed"),
                         ("current", "Current")):
        if key not in exprs:
            continue
        try:
            result = cel.evaluate(exprs[key], context)
        except (RuntimeError, KeyError, TypeError, ValueError):
            # cel-go: "no such key" / "no such attribute"; Flux keeps waiting.
            return "Unevaluable"
        if result is True:
            return verdict
    return "InProgress"


def kstatus(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """What sigs.k8s.io/cli-utils' kstatus computes for each object, in order."""
    text = "".join(json.dumps(obj) + "\n" for obj in objects)
    result = subprocess.run([str(KSTATUS)], input=text, capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise AssertionError(f"kstatus failed ({result.returncode}): {result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines()]
