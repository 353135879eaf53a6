"""`kubectl contacts` without a cluster: matching, rendering, offline validation, the
delete conversation (against an in-memory store) and the API reference's freshness."""

from __future__ import annotations

import base64
import io
import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from alert_contacts import apidoc
from alert_contacts.domain.types import Reason
from alert_contacts.plugin import cli, render
from alert_contacts.plugin.cluster import ClusterError, ConnectOptions, KubeStore, connect
from alert_contacts.plugin.search import Filters, digits, matches, search
from alert_contacts.plugin.validate import field_line, parse, validate_sources
from alert_contacts.settings import Settings

REPO = Path(__file__).resolve().parents[2]
API_VERSION = "alerting.contacts.dev/v1alpha1"
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
WEBHOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"


def contact(name: str, namespace: str = "team-a", *, normalized: dict[str, str] | None = None,
            ready: tuple[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": "Contact",
        "metadata": {"name": name, "namespace": namespace,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec, "status": {},
    }
    if normalized:
        obj["status"]["normalized"] = normalized
    if ready:
        obj["status"]["conditions"] = [{"type": "Ready", "status": ready[0], "reason": ready[1]}]
    return obj


def bot(name: str, namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "DingTalkBot",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


ALICE = contact("alice", displayName="Alice Wang", mobile="+86 138 0013 8000",
                email="Alice@Example.com",
                normalized={"mobile": "+8613800138000", "email": "alice@example.com"},
                ready=("True", "Accepted"))
BOB = contact("bob", "team-b", mobile="139-0013-9000", email="bob@corp.example",
              normalized={"mobile": "+8613900139000"}, ready=("False", "DuplicateEmail"))
ROBOT = bot("oncall-robot", displayName="Alice's on-call robot",
            webhook={"secretRef": {"name": "oncall", "key": "url"}})


# ---------------------------------------------------------------- search


def test_digits_ignore_formatting_and_read_other_scripts() -> None:
    assert digits("+86 (138) 0013-8000") == "8613800138000"
    assert digits("\uff11\uff13\uff18") == "138"  # full-width, as some keyboards type them


@pytest.mark.parametrize("filters", [
    Filters(name="ALI"), Filters(name="wang"), Filters(name="alice"),
    Filters(mobile="1380013"), Filters(mobile="138 0013 8000"), Filters(mobile="+8613800138000"),
    Filters(mobile="8000"), Filters(email="EXAMPLE.COM"), Filters(email="alice@"),
    Filters(name="ali", mobile="0013", email="example"),
])
def test_alice_matches_whole_or_partial_values_ignoring_case(filters: Filters) -> None:
    assert matches(ALICE, filters)


@pytest.mark.parametrize("filters", [
    Filters(name="bob"), Filters(mobile="1390013"), Filters(email="corp"),
    Filters(name="alice", email="corp"),  # filters AND together
])
def test_alice_does_not_match_other_values(filters: Filters) -> None:
    assert not matches(ALICE, filters)


def test_name_and_email_filters_fold_full_width_forms_as_the_operator_does() -> None:
    assert matches(ALICE, Filters(email="\uff41\uff4c\uff49\uff43\uff45@"))  # full-width
    assert matches(ALICE, Filters(name="\uff37\uff41\uff4e\uff47"))


def test_mobile_matches_the_normalized_form_too() -> None:
    # Written without the country code; the operator's normalised form has it.
    assert matches(BOB, Filters(mobile="+86 139 0013 9000"))
    assert matches(BOB, Filters(mobile="8613900"))


def test_bots_match_by_name_and_display_name_only() -> None:
    assert matches(ROBOT, Filters(name="ON-CALL"))
    assert matches(ROBOT, Filters(name="alice"))  # "Alice's on-call robot"
    assert not matches(ROBOT, Filters(mobile="1"))
    assert not matches(ROBOT, Filters(email="@"))


def test_search_keeps_the_matching_objects() -> None:
    assert search([ALICE, BOB, ROBOT], Filters(name="alice")) == [ALICE, ROBOT]
    assert search([ALICE, BOB, ROBOT], Filters()) == [ALICE, BOB, ROBOT]


def test_filters_without_usable_values_are_usage_errors() -> None:
    assert Filters(name="a").problems() == []
    assert Filters(mobile="+-").problems() == ["--mobile '+-': give some digits of the number"]
    assert Filters(email=" ").problems() == ["--email must not be empty"]


# ---------------------------------------------------------------- rendering


NOW = datetime(2026, 1, 1, 0, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("created", "shown"), [
    ("2026-01-01T00:09:58Z", "2s"), ("2026-01-01T00:00:00Z", "10m"),
    ("2025-12-31T00:10:00Z", "24h"), ("2025-12-01T00:10:00Z", "31d"),
    ("2023-01-01T00:00:00Z", "3y"), ("2026-01-01T00:11:00Z", "0s"), (None, "-"), ("junk", "-"),
])
def test_age_reads_like_kubectl(created: str | None, shown: str) -> None:
    assert render.age(created, NOW) == shown


def test_table_has_ready_and_reason_columns_and_dashes_for_nothing() -> None:
    text = render.render([ROBOT, ALICE], "table", all_namespaces=False, now=NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "DISPLAY", "NAME", "MOBILE", "EMAIL", "READY",
                                "REASON", "AGE"]
    assert lines[1].split()[:2] == ["Contact", "alice"]  # sorted by name
    assert lines[1].split()[-5:] == [
        "+8613800138000", "alice@example.com", "True", "Accepted", "10m"]  # normalised keys
    assert lines[2].split()[:2] == ["DingTalkBot", "oncall-robot"]
    assert lines[2].split()[-5:] == ["-", "-", "-", "-", "-"]
    # columns line up: every row's READY starts where the header's does
    column = lines[0].index("READY")
    assert lines[1][column:].startswith("True") and lines[2][column:].startswith("-")


def test_table_shows_keys_as_written_until_normalised_and_names_for_blank_display_names() -> None:
    fresh = contact("carol", displayName=" ", mobile="139 0013 9001", email="Carol@Example.com")
    cells = render.row(fresh, NOW)
    assert cells[1:5] == ("carol", "carol", "139 0013 9001", "Carol@Example.com")


def test_all_namespaces_adds_the_namespace_column() -> None:
    text = render.render([BOB, ALICE], "table", all_namespaces=True, now=NOW)
    assert [line.split()[0] for line in text.splitlines()] == ["NAMESPACE", "team-a", "team-b"]


def test_json_and_yaml_are_a_v1_list_of_the_objects() -> None:
    as_json = json.loads(render.render([ALICE], "json", all_namespaces=False))
    as_yaml = yaml.safe_load(render.render([ALICE], "yaml", all_namespaces=False))
    assert as_json == as_yaml
    assert as_json["kind"] == "List" and as_json["items"] == [ALICE]


def test_name_output_is_what_kubectl_accepts() -> None:
    assert render.render([ROBOT, ALICE], "name", all_namespaces=False) == (
        "contact.alerting.contacts.dev/alice\ndingtalkbot.alerting.contacts.dev/oncall-robot\n")


# ---------------------------------------------------------------- the delete conversation


@dataclass
class FakeStore:
    """An in-memory cluster: just what the commands use."""

    objects: list[dict[str, Any]]
    groups: list[dict[str, Any]] = field(default_factory=list)
    namespace: str = "team-a"
    deleted: list[tuple[str, str, str]] = field(default_factory=list)
    seen: ConnectOptions | None = None

    def list_members(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        def selected(obj: dict[str, Any]) -> bool:
            if selector is None:
                return True
            key, _, value = selector.partition("=")
            return bool(obj["metadata"].get("labels", {}).get(key) == value)

        return [o for o in self.objects
                if namespace in (None, o["metadata"]["namespace"]) and selected(o)]

    def list_groups(self, namespace: str) -> list[dict[str, Any]]:
        return [g for g in self.groups if g["metadata"]["namespace"] == namespace]

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.deleted.append((kind, namespace, name))
        return True


class Terminal(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(argv: Sequence[str], store: FakeStore | None = None, stdin: str = "",
        tty: bool = False) -> Result:
    the_store = store or FakeStore([])

    def fake_connect(options: ConnectOptions) -> FakeStore:
        the_store.seen = options
        if options.namespace:
            the_store.namespace = options.namespace
        return the_store

    out, err = io.StringIO(), io.StringIO()
    code = cli.run(argv, connect=fake_connect, stdin=Terminal(stdin, tty), out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


def labelled(obj: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


GROUP = {"kind": "ContactGroup", "metadata": {"name": "sre", "namespace": "team-a"},
         "spec": {"contacts": ["alice"], "dingTalkBots": ["oncall-robot"]}}


def test_delete_without_a_terminal_and_without_yes_deletes_nothing() -> None:
    store = FakeStore([ALICE, ROBOT], [GROUP])
    result = run(["delete", "alice"], store)
    assert result.code == 1
    assert store.deleted == []
    assert "alice" in result.out and "contactgroup/sre: contact/alice" in result.out
    assert "--yes" in result.err and "Nothing deleted" in result.err


@pytest.mark.parametrize(("answer", "code", "deleted"), [
    ("y\n", 0, 2), ("yes\n", 0, 2), ("n\n", 1, 0), ("\n", 1, 0), ("", 1, 0),
])
def test_delete_asks_on_a_terminal(answer: str, code: int, deleted: int) -> None:
    store = FakeStore([labelled(ALICE, team="pay"), labelled(ROBOT, team="pay"),
                       labelled(contact("carol", email="c@example.com"), team="ops")])
    result = run(["delete", "-l", "team=pay"], store, stdin=answer, tty=True)
    assert result.code == code
    assert len(store.deleted) == deleted
    assert "2 objects will be deleted from namespace team-a" in result.out
    assert "[y/N]" in result.out


def test_delete_yes_deletes_by_name_and_reports_each() -> None:
    store = FakeStore([ALICE, ROBOT, contact("carol", email="c@example.com")])
    result = run(["delete", "alice", "dingtalkbot/oncall-robot", "--yes"], store)
    assert result.code == 0, result.err
    assert store.deleted == [("Contact", "team-a", "alice"),
                             ("DingTalkBot", "team-a", "oncall-robot")]
    assert "contact/alice deleted" in result.out
    assert "dingtalkbot/oncall-robot deleted" in result.out


def test_delete_refuses_unknown_and_ambiguous_names_before_deleting_anything() -> None:
    twin = bot("alice", webhook={"url": WEBHOOK})
    store = FakeStore([ALICE, twin, ROBOT])
    result = run(["delete", "alice", "ghost", "oncall-robot", "--yes"], store)
    assert result.code == 1
    assert store.deleted == []
    assert "contact/alice or dingtalkbot/alice" in result.err
    assert "no Contact or DingTalkBot named 'ghost' in namespace team-a" in result.err
    assert run(["delete", "contact/alice", "--yes"], store).code == 0


def test_delete_by_a_selector_that_matches_nothing_is_not_an_error() -> None:
    result = run(["delete", "-l", "team=none"], FakeStore([ALICE]))
    assert result.code == 0 and "nothing to delete" in result.err


@pytest.mark.parametrize("argv", [
    ["delete"], ["delete", "alice", "-l", "a=b"], ["delete", "pod/alice"],
    ["search", "--mobile", "abc"], ["list", "-o", "wide"], ["frobnicate"], [],
    ["list", "--request-timeout", "soon"],
])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    store = FakeStore([ALICE])
    assert run(argv, store).code == 2
    assert store.deleted == []


def test_cluster_flags_are_accepted_before_and_after_the_command() -> None:
    store = FakeStore([ALICE, BOB])
    result = run(["--context", "prod", "-n", "team-b", "list", "--request-timeout", "5s"], store)
    assert store.seen == ConnectOptions(None, "prod", "team-b", 5.0)
    assert "bob" in result.out and "alice" not in result.out
    run(["list", "--kubeconfig", "/k", "--namespace", "team-a"], store)
    assert store.seen == ConnectOptions("/k", None, "team-a", 30.0)


def test_search_reports_no_match_on_stderr_and_exits_0() -> None:
    result = run(["search", "--email", "nobody"], FakeStore([ALICE]))
    assert result.code == 0 and result.out == ""
    assert "No contacts or DingTalk bots found in namespace team-a" in result.err
    as_json = run(["search", "--email", "nobody", "-o", "json"], FakeStore([ALICE]))
    assert json.loads(as_json.out)["items"] == []


def test_search_all_namespaces() -> None:
    result = run(["search", "--mobile", "13", "-A"], FakeStore([ALICE, BOB, ROBOT]))
    assert [line.split()[:3] for line in result.out.splitlines()[1:]] == [
        ["team-a", "Contact", "alice"], ["team-b", "Contact", "bob"]]


def test_cluster_errors_are_one_clear_line_and_exit_1() -> None:
    def unreachable(options: ConnectOptions) -> FakeStore:
        raise ClusterError("cannot reach the Kubernetes API server at https://x: refused")

    err = io.StringIO()
    code = cli.run(["list"], connect=unreachable, stdin=Terminal("", False), out=io.StringIO(),
                   err=err)
    assert code == 1
    assert err.getvalue() == "error: cannot reach the Kubernetes API server at https://x: refused\n"


def test_missing_kubeconfig_and_unknown_context_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"no kubeconfig found at .*missing.*--kubeconfig"):
        connect(ConnectOptions(kubeconfig=str(tmp_path / "missing")))
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "ns"}},
                     {"name": "prod", "context": {"cluster": "c", "user": "u"}}],
    }))
    with pytest.raises(ClusterError, match=r"context 'qa' not found .*\(contexts: dev, prod\)"):
        connect(ConnectOptions(kubeconfig=str(config), context="qa"))
    assert connect(ConnectOptions(kubeconfig=str(config))).namespace == "ns"
    assert connect(ConnectOptions(kubeconfig=str(config), context="prod")).namespace == "default"
    store = connect(ConnectOptions(kubeconfig=str(config), namespace="x"))
    assert store.namespace == "x"
    # Port 1 on loopback refuses at once: a clear message, no traceback, no retries.
    with pytest.raises(ClusterError, match=re.escape(
        "cannot reach the Kubernetes API server at https://127.0.0.1:1"
    )):
        store.list_members("x", None)


def api_error(status: int, body: str) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.body = body
    return error


def test_api_errors_become_advice() -> None:
    store = KubeStore(kubernetes.client.ApiClient(kubernetes.client.Configuration()),
                      "https://k8s.example", "default", 5)

    def explain(error: ApiException) -> str:
        return str(store._explain("list contacts in namespace default", "contacts", error))

    # The resource type itself is unknown: the CRDs are not installed.
    assert "does not serve contacts.alerting.contacts.dev/v1alpha1: are the alert-contacts " \
           "CRDs installed?" in explain(api_error(404, "404 page not found\n"))
    forbidden = json.dumps({"kind": "Status", "reason": "Forbidden", "code": 403, "message":
                            'contacts.alerting.contacts.dev is forbidden: User "u" cannot list'})
    assert explain(api_error(403, forbidden)) == (
        'forbidden: contacts.alerting.contacts.dev is forbidden: User "u" cannot list')
    assert "credentials were refused or have expired" in explain(api_error(401, ""))
    assert explain(api_error(0, "")).startswith(
        "cannot reach the Kubernetes API server at https://k8s.example")


# ---------------------------------------------------------------- offline validation


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


GOOD = f"""
apiVersion: {API_VERSION}
kind: Contact
metadata: {{name: alice, namespace: team-a}}
spec:
  displayName: Alice Wang
  mobile: "+86 138 0013 8000"
  email: Alice@Example.com
---
apiVersion: v1
kind: Secret
metadata: {{name: oncall, namespace: team-a}}
data:
  url: {base64.b64encode(WEBHOOK.encode()).decode()}
---
apiVersion: {API_VERSION}
kind: DingTalkBot
metadata: {{name: oncall, namespace: team-a}}
spec:
  webhook: {{secretRef: {{name: oncall, key: url}}}}
---
apiVersion: {API_VERSION}
kind: ContactGroup
metadata: {{name: sre, namespace: team-a}}
spec: {{contacts: [alice], dingTalkBots: [oncall]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: unrelated}}
"""


def validate(tmp_path: Path, *args: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(["validate", *args], connect=lambda _: pytest.fail("validate is offline"),
                   stdin=Terminal(stdin, False), out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


def test_a_good_file_validates(tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 0, result.out
    assert result.out == ""
    assert "checked 1 Contact, 1 DingTalkBot, 1 ContactGroup in 1 file: 0 errors, 0 notes" in (
        result.err)


def test_bad_documents_are_reported_with_file_line_object_field_value_and_reason(
    tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: carol, namespace: team-b}}
        spec:
          mobile: "010 1234 5678"
          email: "carol@@example.com"
          phone: "x"
        ---
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: nobody, namespace: team-b}}
        spec: {{displayName: Nobody}}
        ---
        apiVersion: {API_VERSION}
        kind: ContactGroup
        metadata: {{name: g, namespace: team-b}}
        spec: {{contacts: [carol, carol]}}
        ---
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: insecure, namespace: team-b}}
        spec:
          webhook: {{url: "http://oapi.dingtalk.com/robot/send?access_token={TOKEN}"}}
        """)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].startswith(
        f"{path}:5: error: Contact team-b/carol: spec.mobile '010 1234 5678'")
    assert "landline" in lines[0] and lines[0].endswith("[InvalidSpec]")
    assert lines[1].startswith(f"{path}:6: error: Contact team-b/carol: spec.email "
                               "'carol@@example.com'")
    assert lines[2].startswith(f"{path}:7: error: Contact team-b/carol: spec.phone 'x': "
                               "unknown field")
    assert f"{path}:12: error: Contact team-b/nobody: spec: a contact needs" in lines[3]
    assert f"{path}:17: error: ContactGroup team-b/g: spec.contacts[1] 'carol': listed more " \
           "than once" in lines[4]
    assert f"{path}:23: error: DingTalkBot team-b/insecure: spec.webhook.url" in lines[5]
    assert "must use https" in lines[5] and TOKEN not in result.out  # a credential: redacted
    assert len(lines) == 6


def test_duplicates_among_the_files_name_the_first_document(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: alice2, namespace: team-b}}
        spec:
          mobile: "138-0013-8000"
          email: ALICE@example.com
        ---
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: copy, namespace: team-b}}
        spec:
          webhook: {{url: "{WEBHOOK}"}}
        """)
    result = validate(tmp_path, "-f", str(first), "-f", str(second))
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{second}:5: error: Contact team-b/alice2: spec.mobile '138-0013-8000': mobile "
        f"+8613800138000 is already used by Contact team-a/alice at {first}:1 [DuplicateMobile]",
        f"{second}:6: error: Contact team-b/alice2: spec.email 'ALICE@example.com': email "
        f"alice@example.com is already used by Contact team-a/alice at {first}:1 "
        "[DuplicateEmail]",
        f"{second}:12: error: DingTalkBot team-b/copy: spec.webhook.url: webhook access token "
        f"(ending …{TOKEN[-4:]}) is already used by DingTalkBot team-a/oncall at {first}:15 "
        "[DuplicateWebhook]",
    ]


def test_a_secret_outside_the_files_is_a_note_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "bot.yaml", f"""
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: synced, namespace: team-a}}
        spec:
          webhook: {{secretRef: {{name: from-vault, key: url}}}}
          signingSecretRef: {{name: from-vault, key: secret}}
        ---
        apiVersion: {API_VERSION}
        kind: ContactGroup
        metadata: {{name: g, namespace: team-a}}
        spec: {{dingTalkBots: [synced, typo]}}
        """)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 0, result.out
    notes = result.out.splitlines()
    assert notes[0].startswith(f"{path}:5: note: DingTalkBot team-a/synced: "
                               "spec.webhook.secretRef: Secret 'from-vault' key 'url' is not in "
                               "the given files")
    assert notes[1].startswith(f"{path}:6: note: DingTalkBot team-a/synced: spec.signingSecretRef")
    assert notes[2].startswith(f"{path}:11: note: ContactGroup team-a/g: spec.dingTalkBots "
                               "'typo': dingtalkbot/typo is not defined in the given files")
    assert len(notes) == 3
    assert "0 errors, 3 notes" in result.err


def test_a_secret_in_the_files_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "bot.yaml", f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: s, namespace: team-a}}
        stringData: {{url: "https://evil.example/robot/send?access_token={TOKEN}"}}
        ---
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: b, namespace: team-a}}
        spec:
          webhook: {{secretRef: {{name: s, key: url}}}}
        """)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 1
    assert f"{path}:10: error: DingTalkBot team-a/b: spec.webhook.secretRef: the webhook URL in " \
           "Secret 's' key 'url': the host 'evil.example' is not an allowed DingTalk host" in \
           result.out


def test_secrets_are_read_as_the_operator_reads_them(tmp_path: Path) -> None:
    # The same decoding as the operator's Secret index (domain.records.secret_data),
    # and only Opaque Secrets: a bot pointing at another type waits in the cluster.
    path = write(tmp_path, "bot.yaml", f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: s, namespace: team-a}}
        stringData: {{password: hunter2}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: tls, namespace: team-a}}
        type: kubernetes.io/tls
        data: {{url: {base64.b64encode(WEBHOOK.encode()).decode()}}}
        ---
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: b, namespace: team-a}}
        spec:
          webhook: {{secretRef: {{name: s, key: password}}}}
        ---
        apiVersion: {API_VERSION}
        kind: DingTalkBot
        metadata: {{name: c, namespace: team-a}}
        spec:
          webhook: {{secretRef: {{name: tls, key: url}}}}
        """)
    unusable = "there is no URL (the value is empty, or not text starting with https://)"
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0] == (f"{path}:16: error: DingTalkBot team-a/b: spec.webhook.secretRef: the "
                        f"webhook URL in Secret 's' key 'password': {unusable} [InvalidSpec]")
    assert lines[1] == (f"{path}:22: error: DingTalkBot team-a/c: spec.webhook.secretRef: Secret "
                        "'tls' in this namespace has type 'kubernetes.io/tls'; the operator "
                        "reads webhook URLs and signing secrets only from Secrets of type "
                        "'Opaque' (create an Opaque Secret of that name instead) [SecretNotFound]")
    assert len(lines) == 2


def test_quota_and_settings_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    result = validate(tmp_path, "-f", str(path), "--quota", "1")
    assert result.code == 1
    assert "DingTalkBot team-a/oncall: the files alone hold more Contacts and DingTalkBots than " \
           "the quota of 1; this one is number 2 in file order [QuotaExceeded]" in result.out
    assert validate(tmp_path, "-f", str(path), "--default-region", "XYZ").code == 2
    # A number without a country code is read in the region given.
    local = write(tmp_path, "us.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: us}}
        spec: {{mobile: "(201) 555-0123"}}
        """)
    assert validate(tmp_path, "-f", str(local)).code == 1
    assert validate(tmp_path, "-f", str(local), "--default-region", "US").code == 0


def test_stdin_directories_lists_and_broken_yaml(tmp_path: Path) -> None:
    assert validate(tmp_path, "-f", "-", stdin=GOOD).code == 0
    listed = {"apiVersion": "v1", "kind": "List", "items": list(yaml.safe_load_all(GOOD))}
    result = validate(tmp_path, "-f", "-", stdin=json.dumps(listed))
    assert result.code == 0 and "1 Contact, 1 DingTalkBot, 1 ContactGroup" in result.err

    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "one.yml", GOOD)
    write(tmp_path, "README.md", "not a manifest")
    assert validate(tmp_path, "-f", str(tmp_path)).code == 1  # no manifests at the top level
    result = validate(tmp_path, "-f", str(tmp_path), "-R")
    assert result.code == 0 and "in 1 file" in result.err

    broken = write(tmp_path, "broken.yaml", "kind: Contact\nspec: [\n")
    result = validate(tmp_path, "-f", str(broken))
    assert result.code == 1 and result.out.startswith(f"{broken}:3: error: not valid YAML")
    missing = validate(tmp_path, "-f", str(tmp_path / "missing.yaml"))
    assert missing.code == 1 and "no such file" in missing.err


def test_same_object_twice_and_unknown_versions_are_errors(tmp_path: Path) -> None:
    text = f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: a}}
        spec: {{email: a@example.com}}
        ---
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: a}}
        spec: {{email: b@example.com}}
        ---
        apiVersion: alerting.contacts.dev/v1
        kind: Contact
        metadata: {{name: c}}
        spec: {{email: c@example.com}}
        """
    result = validate(tmp_path, "-f", "-", stdin=textwrap.dedent(text).lstrip())
    assert result.code == 1
    lines = result.out.splitlines()
    assert "Contact a: metadata.name 'a': the same object is already defined at <stdin>:1" in (
        lines[0])
    assert "apiVersion 'alerting.contacts.dev/v1'" in lines[1]


def test_field_line_finds_nested_fields_and_falls_back_to_the_parent() -> None:
    (doc,), _ = parse("f.yaml", "kind: X\nspec:\n  list:\n  - a\n  - b\n  webhook:\n    url: u\n")
    assert field_line(doc.node, "spec.list[1]") == 5
    assert field_line(doc.node, "spec.webhook.url") == 7
    assert field_line(doc.node, "spec.webhook.secretRef") == 6
    assert field_line(doc.node, "") == 1


def test_validation_is_the_webhooks_own() -> None:
    # The same verdict as domain.validation for the same spec: one validation path.
    from alert_contacts.domain.validation import validate_contact

    spec = {"mobile": "+1 201 555 0123x", "email": "x@y"}
    report = validate_sources([("s", yaml.safe_dump({
        "apiVersion": API_VERSION, "kind": "Contact", "metadata": {"name": "x"}, "spec": spec,
    }))], Settings())
    expected = [p.message for p in validate_contact(spec, Settings()).problems]
    assert sorted(f.message for f in report.errors) == sorted(expected)
    assert len(expected) == 2


# ---------------------------------------------------------------- the API reference


def test_docs_api_md_is_generated_from_the_committed_crds() -> None:
    expected = apidoc.render(apidoc.load_crds(REPO / "crds"))
    current = (REPO / "docs/api.md").read_text(encoding="utf-8")
    assert current == expected, "docs/api.md is stale: run `python -m alert_contacts.apidoc`"


def test_apidoc_check_fails_when_stale(tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    args = ["--crds", str(REPO / "crds"), "--out", str(out)]
    assert apidoc.main(["--check", *args]) == 1
    assert apidoc.main(args) == 0
    assert apidoc.main(["--check", *args]) == 0
    text = out.read_text(encoding="utf-8")
    for needle in ("## Contact", "## DingTalkBot", "## ContactGroup", "`spec.mobile`",
                   "`spec.webhook.secretRef.name`", "`status.members.notReady`",
                   "exactly one of url or secretRef", "Field selectors"):
        assert needle in text
    out.write_text(text.replace("max length 64", "max length 65"), encoding="utf-8")
    assert apidoc.main(["--check", *args]) == 1


# ---------------------------------------------------------------- the other docs


STATUS_ONLY_REASONS = {Reason.VALID, Reason.UNIQUE, Reason.WITHIN_QUOTA, Reason.MEMBERS_RESOLVED}


def test_troubleshooting_has_a_row_for_every_ready_reason() -> None:
    text = (REPO / "docs/troubleshooting.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")}
    assert rows == {str(r) for r in Reason} - STATUS_ONLY_REASONS
    assert "operator is starting" in text and "| 503 |" in text


def test_gitops_snippets_are_valid_and_cover_every_kind() -> None:
    text = (REPO / "docs/gitops.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    kinds = {crd["spec"]["names"]["kind"] for crd in apidoc.load_crds(REPO / "crds")}
    # The Argo CD patch is shipped as a file (docs/gitops.md shows its script).
    argocd = yaml.safe_load((REPO / "deploy/gitops/argocd-cm.yaml").read_text(encoding="utf-8"))
    scripts = {key.rpartition("_")[2]: script for key, script in argocd["data"].items()
               if key.startswith("resource.customizations.health.alerting.contacts.dev_")}
    assert set(scripts) == kinds and len(set(scripts.values())) == 1
    flux = next(b for b in blocks if b.get("kind") == "Kustomization")
    assert flux["spec"]["wait"] is True
    assert {e["kind"] for e in flux["spec"]["healthCheckExprs"]} == kinds


# ---------------------------------------------------------------- YAML and metadata, as kubectl

# What `kubectl create --dry-run=client -o json` (kubectl v1.35.4, sigs.k8s.io/yaml) made of
# each plain scalar; tests/e2e/test_kubectl_parity.py checks the same table against kubectl.
KUBECTL_SCALARS: list[tuple[str, object]] = [
    ("12:30:00", "12:30:00"),  # PyYAML (YAML 1.1): sexagesimal 45000
    ("2024-01-01", "2024-01-01"),  # PyYAML: a date
    ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("1e3", 1000),  # PyYAML: the string '1e3'
    ("0o17", 15),  # PyYAML: the string '0o17'
    ("0x1F", 31), ("0755", 493), ("1_000", 1000), ("+12", 12), ("-0o17", -15), ("0b101", 5),
    ("08", 8), ("012.5", 12.5), (".5e3", 500), ("1.", 1), ("-.5", -0.5),
    ("0o19", "0o19"), ("1e400", "1e400"), ("1.2.3", "1.2.3"),
    ("yes", True), ("y", True), ("on", True), ("Off", False), ("NO", False), ("n", False),
    ("~", None), ("Null", None), ("abc", "abc"),
]


@pytest.mark.parametrize(("plain", "value"), KUBECTL_SCALARS)
def test_plain_scalars_are_typed_as_kubectl_types_them(plain: str, value: object) -> None:
    from alert_contacts.plugin.validate import go_scalar

    assert go_scalar(plain) == value and type(go_scalar(plain)) is type(value)
    (doc,), findings = parse("x.yaml", f"kind: Contact\nspec: {{displayName: {plain}}}\n")
    assert findings == [] and doc.body["spec"]["displayName"] == value
    # Quoted, every one of them is a string.
    (doc,), _ = parse("x.yaml", f"kind: Contact\nspec: {{displayName: '{plain}'}}\n")
    assert doc.body["spec"]["displayName"] == plain


def test_merge_keys_and_anchors_still_work() -> None:
    (doc,), findings = parse("x.yaml", "base: &b {a: 1}\nkind: Contact\nspec: {<<: *b, c: y}\n")
    assert findings == [] and doc.body["spec"] == {"a": 1, "c": True}


@pytest.mark.parametrize(("value", "verdict"), [
    ("12:30:00", None),  # a string for kubectl: a fine display name
    ("2024-01-01", None),
    ("1e3", "spec.displayName '1000': must be a string (quote it in YAML)"),
    ("0o17", "spec.displayName '15': must be a string (quote it in YAML)"),
    ("on", "spec.displayName 'true': must be a string"),
])
def test_validate_gives_kubectls_verdict_on_unquoted_values(
    tmp_path: Path, value: str, verdict: str | None
) -> None:
    path = write(tmp_path, "c.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {{name: alice, namespace: team-a}}
        spec: {{displayName: {value}, email: alice@example.com}}
        """)
    result = validate(tmp_path, "-f", str(path))
    if verdict is None:
        assert result.code == 0, result.out
    else:
        assert result.code == 1
        assert f"{path}:4: error: Contact team-a/alice: {verdict}" in result.out


@pytest.mark.parametrize(("metadata", "line"), [
    ("{namespace: team-a}", "metadata.name: is required (kubectl apply needs a name)"),
    ("{name: '', namespace: team-a}", "metadata.name: is required"),
    ("{name: Alice, namespace: team-a}", "metadata.name 'Alice': must be a lowercase RFC 1123 "
     "subdomain"),
    ("{name: alice_1, namespace: team-a}", "metadata.name 'alice_1': must be a lowercase"),
    (f"{{name: {'a' * 254}, namespace: team-a}}", "must be a lowercase RFC 1123 subdomain"),
    ("{name: 123, namespace: team-a}", "metadata.name '123': must be a string"),
    ("{name: alice, namespace: team.a}", "metadata.namespace 'team.a': must be a lowercase "
     "RFC 1123 label"),
    ("{name: alice, namespace: team-a, labels: {team: 1}}",
     "metadata.labels.team '1': must be a string (quote it in YAML)"),
    ("{name: alice, namespace: team-a, labels: {team: yes}}",
     "metadata.labels.team 'true': must be a string"),
    ("{name: alice, namespace: team-a, labels: {team: 'a b'}}",
     "metadata.labels.team 'a b': must be empty or at most 63 letters"),
    ("{name: alice, namespace: team-a, labels: {'-team': a}}",
     "metadata.labels.-team: the key must be a qualified name"),
    ("{name: alice, namespace: team-a, annotations: {note: 12}}",
     "metadata.annotations.note '12': must be a string"),
])
def test_metadata_is_checked_as_the_api_server_does(
    tmp_path: Path, metadata: str, line: str
) -> None:
    path = write(tmp_path, "c.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata: {metadata}
        spec: {{email: alice@example.com}}
        """)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 1
    assert line in result.out, result.out


def test_good_metadata_passes(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", f"""
        apiVersion: {API_VERSION}
        kind: Contact
        metadata:
          name: alice.wang-2
          namespace: team-a
          labels: {{app.kubernetes.io/part-of: alerting, empty: ""}}
          annotations: {{example.com/note: "any text: at all"}}
        spec: {{email: alice@example.com}}
        """)
    result = validate(tmp_path, "-f", str(path))
    assert result.code == 0, result.out


def test_receiver_token_derives_a_namespace_token_from_the_master_on_stdin() -> None:
    import io

    from alert_contacts.domain.delivery import namespace_token
    from alert_contacts.plugin.cli import run as run_plugin
    out, err = io.StringIO(), io.StringIO()
    code = run_plugin(["receiver-token", "-n", "team-a"], stdin=io.StringIO("s3cret\n"),
                      out=out, err=err)
    assert code == 0 and out.getvalue() == namespace_token("s3cret", "team-a") + "\n"
    assert "s3cret" not in out.getvalue() + err.getvalue()
    missing = run_plugin(["receiver-token"], stdin=io.StringIO("s3cret"), out=out,
                         err=err)
    assert missing != 0 and "-n" in err.getvalue()
