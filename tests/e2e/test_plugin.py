"""`kubectl contacts` against real objects: the installed console script, as users run it."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import (
    BIN,
    PLURALS,
    Cluster,
    Operator,
    unique_email,
    unique_mobile,
    wait_for_condition,
)

PLUGIN = Path(sys.executable).parent / "kubectl-contacts"
API_VERSION = "alerting.contacts.dev/v1alpha1"


def plugin(
    cluster: Cluster, *args: str, input: str | None = None, stdin: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: run `.venv/bin/pip install -e '.[test]'`")
    return subprocess.run(
        [str(PLUGIN), *args], input=input, stdin=stdin if input is None else None,
        capture_output=True, text=True, env=env or cluster.env(), timeout=60,
    )


def on_a_terminal(cluster: Cluster, *args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """Run the plugin with a pseudo-terminal as stdin, typing ``answer``."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(PLUGIN), *args], stdin=terminal, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=cluster.env(),
        )
        os.close(terminal)
        os.write(controller, answer.encode())  # the line waits in the terminal until read
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def names(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str, str]]:
    assert result.returncode == 0, result.stderr
    return {(o["metadata"]["namespace"], o["kind"], o["metadata"]["name"])
            for o in json.loads(result.stdout)["items"]}


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"plugin-other-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    for plural in PLURALS.values():
        cluster.kubectl("delete", plural, "--all", "-n", name, "--wait=false")


@dataclass(frozen=True)
class People:
    """The keys drawn for this test: uniqueness is cluster-wide, and a previous test's
    objects may still be known to the operator (their deletes are not awaited)."""

    alice_digits: str  # national digits, 138xxxxxxxx
    alice_email: str  # as written: mixed case
    bob_digits: str
    bob_email: str


@pytest.fixture
def people(
    cluster: Cluster, operator: Operator, namespace: str, other_namespace: str
) -> People:
    """alice and an on-call bot in ``namespace``, bob elsewhere; both contacts Ready."""
    alice, _ = unique_mobile()
    bob, _ = unique_mobile()
    drawn = People(alice, unique_email("Alice").replace("@example.com", "@Example.com"),
                   bob, unique_email("bob"))
    cluster.create("Contact", namespace, "alice", {
        "displayName": "Alice Wang", "mobile": f"+86 {alice[:3]} {alice[3:7]} {alice[7:]}",
        "email": drawn.alice_email,
    })
    cluster.create("DingTalkBot", namespace, "alice-robot", {
        "displayName": "On-call robot", "webhook": {"secretRef": {"name": "absent", "key": "url"}},
    })
    cluster.create("Contact", other_namespace, "bob",
                   {"mobile": f"{bob[:3]}-{bob[3:7]}-{bob[7:]}", "email": drawn.bob_email})
    wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
    wait_for_condition(cluster, "Contact", other_namespace, "bob", "Ready", "True")
    wait_for_condition(cluster, "DingTalkBot", namespace, "alice-robot", "Ready", "False",
                       reason="SecretNotFound")
    return drawn


# ---------------------------------------------------------------- search and list


def test_search_by_partial_values_ignoring_case(
    cluster: Cluster, people: People, namespace: str, other_namespace: str
) -> None:
    alice, robot = (namespace, "Contact", "alice"), (namespace, "DingTalkBot", "alice-robot")
    bob = (other_namespace, "Contact", "bob")

    def everywhere(*args: str) -> set[tuple[str, str, str]]:
        """Search with -A; only this test's namespaces count (other tests' objects may linger)."""
        found = names(plugin(cluster, "search", *args, "-A", "-o", "json"))
        return {n for n in found if n[0] in (namespace, other_namespace)}

    assert names(plugin(cluster, "search", "--name", "ALI", "-n", namespace, "-o", "json")) == {
        alice, robot}
    assert names(plugin(cluster, "search", "--name", "wang", "-n", namespace, "-o", "json")) == {
        alice}
    # Digits only: the number is written with spaces and a country code.
    assert everywhere("--mobile", people.alice_digits[3:10]) == {alice}
    # Written without a country code; found through status.normalized.mobile.
    d = people.bob_digits
    assert everywhere("--mobile", f"+86 {d[:3]} {d[3:7]} {d[7:]}") == {bob}
    # Written 'Alice-…@Example.com', stored lower-case in status: upper case matches neither.
    assert everywhere("--email", people.alice_email.split("@")[0].upper()) == {alice}
    assert everywhere("--name", "ali", "--email", people.bob_email) == set()  # filters AND


@pytest.mark.usefixtures("people")
def test_search_in_one_namespace_or_all(
    cluster: Cluster, namespace: str, other_namespace: str
) -> None:
    everywhere = names(plugin(cluster, "search", "--email", "example", "-A", "-o", "json"))
    assert {(namespace, "Contact", "alice"), (other_namespace, "Contact", "bob")} <= everywhere
    here = names(plugin(cluster, "search", "--email", "example", "-n", namespace, "-o", "json"))
    assert here == {(namespace, "Contact", "alice")}

    table = plugin(cluster, "search", "--email", "example", "-A")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:3] == ["NAMESPACE", "KIND", "NAME"]
    nothing = plugin(cluster, "search", "--email", "nobody-has-this", "-n", namespace)
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert f"No contacts or DingTalk bots found in namespace {namespace}" in nothing.stderr


@pytest.mark.usefixtures("people")
def test_list_shows_ready_and_reason(cluster: Cluster, namespace: str) -> None:
    result = plugin(cluster, "list", "-n", namespace)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["alice"][0] == "Contact" and rows["alice"][-3:-1] == ["True", "Accepted"]
    assert rows["alice-robot"][0] == "DingTalkBot"
    assert rows["alice-robot"][-3:-1] == ["False", "SecretNotFound"]
    as_yaml = yaml.safe_load(plugin(cluster, "list", "-n", namespace, "-o", "yaml").stdout)
    assert {item["metadata"]["name"] for item in as_yaml["items"]} == {"alice", "alice-robot"}


@pytest.mark.usefixtures("people")
def test_namespace_comes_from_the_kubeconfig_context(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(cluster.kubeconfig.read_text())
    subprocess.run([str(BIN / "kubectl"), "config", "set-context", "--current",
                    f"--namespace={namespace}", f"--kubeconfig={config}"], check=True,
                   capture_output=True)
    env = {**os.environ, "KUBECONFIG": str(config)}
    result = plugin(cluster, "list", "-o", "name", env=env)
    assert result.returncode == 0, result.stderr
    assert "contact.alerting.contacts.dev/alice" in result.stdout.splitlines()
    # --kubeconfig wins over KUBECONFIG, and -n over the context's namespace.
    elsewhere = plugin(cluster, "--kubeconfig", str(config), "list", "-n", "kube-system",
                       env={**os.environ, "KUBECONFIG": "/nonexistent"})
    assert elsewhere.returncode == 0 and elsewhere.stdout == "", elsewhere.stderr
    unknown = plugin(cluster, "list", "--context", "no-such-context", env=env)
    assert unknown.returncode == 1
    assert "context 'no-such-context' not found" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_kubectl_runs_the_plugin_from_path(
    cluster: Cluster, people: People, namespace: str
) -> None:
    env = cluster.env(PATH=f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    d = people.alice_digits
    result = subprocess.run(
        [str(BIN / "kubectl"), "contacts", "search", "--mobile", f"{d[3:7]} {d[7:]}",
         "-n", namespace],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:]] == [["Contact", "alice"]]


# ---------------------------------------------------------------- delete


def test_delete_by_selector_asks_unless_yes(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    for name, team in (("pay-1", "payments"), ("pay-2", "payments"), ("ops-1", "ops")):
        cluster.create("Contact", namespace, name, {"email": f"{name}@{namespace}.example"},
                       labels={"team": team})

    def remaining() -> list[str]:
        return sorted(o["metadata"]["name"] for o in cluster.list("Contact", namespace))

    # No terminal and no --yes: refuse, delete nothing.
    refused = plugin(cluster, "delete", "-l", "team=payments", "-n", namespace,
                     stdin=subprocess.DEVNULL)
    assert refused.returncode == 1
    assert "pay-1" in refused.stdout and "pay-2" in refused.stdout
    assert "ops-1" not in refused.stdout
    assert "--yes" in refused.stderr and "Nothing deleted" in refused.stderr
    assert remaining() == ["ops-1", "pay-1", "pay-2"]

    # On a terminal, answering no deletes nothing.
    declined = on_a_terminal(cluster, "delete", "-l", "team=payments", "-n", namespace,
                             answer="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "[y/N]" in declined.stdout and "Nothing deleted" in declined.stderr
    assert remaining() == ["ops-1", "pay-1", "pay-2"]

    # --yes deletes exactly what the selector matches.
    confirmed = plugin(cluster, "delete", "-l", "team=payments", "-n", namespace, "--yes")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "contact/pay-1 deleted" in confirmed.stdout
    assert "contact/pay-2 deleted" in confirmed.stdout
    assert remaining() == ["ops-1"]

    # On a terminal, answering yes deletes by name.
    accepted = on_a_terminal(cluster, "delete", "ops-1", "-n", namespace, answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "contact/ops-1 deleted" in accepted.stdout
    assert remaining() == []


def test_delete_names_all_or_nothing(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.create("Contact", namespace, "carol", {"email": f"carol@{namespace}.example"})
    cluster.create("ContactGroup", namespace, "sre", {"contacts": ["carol"]})
    result = plugin(cluster, "delete", "carol", "ghost", "-n", namespace, "--yes")
    assert result.returncode == 1
    assert f"no Contact or DingTalkBot named 'ghost' in namespace {namespace}" in result.stderr
    assert cluster.get("Contact", namespace, "carol") is not None

    shown = plugin(cluster, "delete", "carol", "-n", namespace, stdin=subprocess.DEVNULL)
    assert "contactgroup/sre: contact/carol" in shown.stdout  # the group that will miss it
    assert plugin(cluster, "delete", "carol", "-n", namespace, "--yes").returncode == 0
    assert cluster.get("Contact", namespace, "carol") is None
    wait_for_condition(cluster, "ContactGroup", namespace, "sre", "Ready", "False",
                       reason="MembersMissing")


# ---------------------------------------------------------------- errors


def test_cluster_errors_are_clear(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())

    unreachable = json.loads(json.dumps(config))
    unreachable["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (tmp_path / "unreachable").write_text(yaml.safe_dump(unreachable))
    result = plugin(cluster, "--kubeconfig", str(tmp_path / "unreachable"), "list")
    assert result.returncode == 1
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr

    # An identity without RBAC rules for contacts: a service account's token.
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    try:
        token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
        limited = json.loads(json.dumps(config))
        limited["users"] = [{"name": "nobody", "user": {"token": token}}]
        for context in limited["contexts"]:
            context["context"]["user"] = "nobody"
        (tmp_path / "limited").write_text(yaml.safe_dump(limited))
        result = plugin(cluster, "--kubeconfig", str(tmp_path / "limited"), "list",
                        "-n", namespace)
        assert result.returncode == 1
        assert result.stderr.startswith("error: forbidden: ")
        assert f"system:serviceaccount:{namespace}:nobody" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        cluster.kubectl("delete", "serviceaccount", "nobody", "-n", namespace)


# ---------------------------------------------------------------- validate


def test_validate_good_and_bad_files_offline(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(textwrap.dedent(f"""\
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: dave, namespace: {namespace}}}
        spec: {{mobile: "+86 137 0013 7000", email: dave@{namespace}.example}}
        ---
        apiVersion: {API_VERSION}
        kind: ContactGroup
        metadata: {{name: team, namespace: {namespace}}}
        spec: {{contacts: [dave]}}
        """))
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(f"""\
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: erin, namespace: {namespace}}}
        spec: {{email: "erin@@{namespace}.example"}}
        ---
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: dave-again, namespace: {namespace}}}
        spec: {{mobile: "137-0013-7000"}}
        """))
    # Offline: no cluster needed, so a kubeconfig pointing nowhere does not matter.
    offline = {**os.environ, "KUBECONFIG": "/nonexistent"}
    ok = plugin(cluster, "validate", "-f", str(good), env=offline)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == "" and "0 errors" in ok.stderr

    failed = plugin(cluster, "validate", "-f", str(good), "-f", str(bad), env=offline)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:4: error: Contact {namespace}/erin: spec.email "
                               f"'erin@@{namespace}.example': ")
    assert lines[1] == (
        f"{bad}:9: error: Contact {namespace}/dave-again: spec.mobile '137-0013-7000': mobile "
        f"+8613700137000 is already used by Contact {namespace}/dave at {good}:1 "
        "[DuplicateMobile]")

    # The webhook refuses the same object with the same words: one validation path.
    applied = cluster.kubectl("apply", "-f", str(bad), check=False)
    assert applied.returncode != 0
    reason = lines[0].split("': ", 1)[1].removesuffix(" [InvalidSpec]")
    assert reason in applied.stderr
    assert cluster.get("Contact", namespace, "erin") is None

    # And through stdin, as CI pipelines pipe rendered manifests.
    piped = plugin(cluster, "validate", "-f", "-", input=bad.read_text(), env=offline)
    assert piped.returncode == 1 and piped.stdout.startswith("<stdin>:4: error:")
