"""`kubectl contacts validate` gives the verdict `kubectl apply --dry-run=server` gives.

The same files go through both: the plugin offline, kubectl through the real API
server, its schema (CEL rules included) and the operator's admission webhook.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alert_contacts.plugin.validate import go_scalar
from tests.e2e.harness import BIN, Cluster, Operator, unique_email, unique_mobile

PLUGIN = Path(sys.executable).parent / "kubectl-contacts"
API_VERSION = "alerting.contacts.dev/v1alpha1"

# Plain scalars whose type PyYAML (YAML 1.1) and kubectl (sigs.k8s.io/yaml) disagree on,
# and some they agree on.
SCALARS = ["12:30:00", "2024-01-01", "2024-01-01T10:00:00Z", "1e3", "0o17", "0x1F", "0755",
           "1_000", "08", "012.5", ".5e3", "1.", "0o19", "1e400", "yes", "y", "n", "on", "Off",
           "~", "Null", "abc", "-", "+12", "0b101", "1.2.3"]


def kubectl_reads(cluster: Cluster, scalars: list[str], tmp_path: Path) -> list[object]:
    """What kubectl makes of each plain scalar, as spec.displayName of a Contact."""
    path = tmp_path / "scalars.yaml"
    path.write_text("".join(
        f"---\napiVersion: {API_VERSION}\nkind: Contact\n"
        f"metadata: {{name: x{index}, namespace: default}}\nspec: {{displayName: {plain}}}\n"
        for index, plain in enumerate(scalars)))
    result = cluster.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json",
                             "-f", str(path))
    # One JSON object after another, in file order.
    decoder, text, items = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        item, end = decoder.raw_decode(text)
        items.append(item)
        text = text[end:].strip()
    return [item["spec"].get("displayName") for item in items]


def test_plain_scalars_are_read_as_kubectl_reads_them(cluster: Cluster, tmp_path: Path) -> None:
    theirs = kubectl_reads(cluster, SCALARS, tmp_path)
    differ = {plain: (k, go_scalar(plain)) for plain, k in zip(SCALARS, theirs, strict=True)
              if k != go_scalar(plain) or type(k) is not type(go_scalar(plain))}
    assert differ == {}, f"kubectl vs the plugin: {differ}"


def documents(namespace: str) -> dict[str, str]:
    """One file per case: (file stem -> YAML text), each a single object."""
    national, _ = unique_mobile()

    def contact(name: str, spec: str, metadata: str = "") -> str:
        return (f"apiVersion: {API_VERSION}\nkind: Contact\n"
                f"metadata: {{name: {name}, namespace: {namespace}{metadata}}}\n"
                f"spec: {spec}\n")

    email = unique_email("parity")
    return {
        "good": contact("good", f'{{email: {email}, mobile: "{national}"}}'),
        "sexagesimal-name": contact("sexa", f"{{displayName: 12:30:00, email: x{email}}}"),
        "date-name": contact("dated", f"{{displayName: 2024-01-01, email: y{email}}}"),
        "float-name": contact("floaty", f"{{displayName: 1e3, email: z{email}}}"),
        "octal-name": contact("octal", f"{{displayName: 0o17, email: w{email}}}"),
        "bool-name": contact("booly", f"{{displayName: y, email: v{email}}}"),
        "unquoted-mobile": contact("unquoted", f"{{mobile: {national}}}"),
        "upper-case-name": contact("Alice", f"{{email: u{email}}}"),
        "underscore-name": contact("al_ice", f"{{email: t{email}}}"),
        "long-name": contact("a" * 254, f"{{email: s{email}}}"),
        "no-name": (f"apiVersion: {API_VERSION}\nkind: Contact\nmetadata: {{namespace: "
                    f"{namespace}}}\nspec: {{email: r{email}}}\n"),
        "numeric-label": contact("labelled", f"{{email: q{email}}}", ", labels: {team: 1}"),
        "bad-label": contact("labelled2", f"{{email: p{email}}}", ", labels: {team: 'a b'}"),
        "good-label": contact("labelled3", f"{{email: o{email}}}",
                              ", labels: {app.kubernetes.io/part-of: alerting}"),
        "blank-email": contact("blank", f'{{mobile: "{national}", email: ""}}'),
        "bidi-name": contact("bidi", f'{{displayName: "a\\u202eb", email: n{email}}}'),
        "look-alike": contact("alike", f"{{email: p\u0430y{email}}}"),
        "unknown-field": contact("unknown", f"{{email: m{email}, phone: '1'}}"),
        "token-bot": (f"apiVersion: {API_VERSION}\nkind: DingTalkBot\nmetadata: {{name: tb, "
                      f"namespace: {namespace}}}\nspec: {{webhook: {{url: "
                      "'https://oapi.dingtalk.com/robot/send?Access_Token=0123456789abcdef"
                      "0123456789abcdef'}}\n"),
    }


@pytest.fixture
def files(tmp_path: Path, namespace: str) -> dict[str, Path]:
    paths = {}
    for stem, text in documents(namespace).items():
        paths[stem] = tmp_path / f"{stem}.yaml"
        paths[stem].write_text(text, encoding="utf-8")
    return paths


def test_validate_and_server_side_dry_run_agree_on_every_file(
    cluster: Cluster, operator: Operator, namespace: str, files: dict[str, Path]
) -> None:
    verdicts: dict[str, tuple[bool, bool, str, str]] = {}
    for stem, path in files.items():
        server = cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
        plugin = subprocess.run([str(PLUGIN), "validate", "-f", str(path)], capture_output=True,
                                text=True, env=cluster.env(PATH=f"{BIN}"), timeout=60)
        assert plugin.returncode in (0, 1), plugin.stderr
        verdicts[stem] = (server.returncode == 0, plugin.returncode == 0,
                          server.stderr.strip(), plugin.stdout.strip())
    disagree = {stem: v for stem, v in verdicts.items() if v[0] != v[1]}
    assert disagree == {}, json.dumps(disagree, indent=1, ensure_ascii=False)
    # The cases are not all alike: both accept some and refuse others.
    accepted = {stem for stem, v in verdicts.items() if v[0]}
    assert accepted == {"good", "sexagesimal-name", "date-name", "good-label"}
