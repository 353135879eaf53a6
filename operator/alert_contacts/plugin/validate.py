"""``kubectl contacts validate``: check manifests offline, before they reach a cluster.

The same functions as the admission webhook and the reconciler judge each
Contact, DingTalkBot and ContactGroup (``alert_contacts.domain.validation``),
and the same ordering judges uniqueness and quota among the given documents
(``decide``, with file order standing in for creation order). What cannot be
known offline is a *note*, not an error: a bot's Secret that is not among the
files, a group member defined elsewhere. Other kinds of objects are skipped,
except Secrets, which bots may reference: only Opaque ones, decoded as the
operator decodes them (``alert_contacts.domain.records.secret_data``).

Files are read as kubectl reads them (``KubectlLoader``): plain scalars are
typed by the rules of sigs.k8s.io/yaml (go-yaml v2), not PyYAML's YAML 1.1, so
``12:30:00`` and ``2024-01-01`` stay strings while ``1e3``, ``0o17`` and ``y`` do
not; and metadata is checked as the API server checks it (name, namespace,
labels, annotations). The verdict is then the one ``kubectl apply
--dry-run=server`` gives.

Every finding names the file and line, the object, the field, the value and
the reason, compiler-style, so CI logs link straight to the line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from alert_contacts.domain.decisions import Decision, decide, describe_claim
from alert_contacts.domain.groups import member_label, member_refs
from alert_contacts.domain.records import secret_data, secret_value
from alert_contacts.domain.types import (
    API_VERSION,
    GROUP,
    Candidate,
    Claim,
    NotOpaque,
    ObjectRef,
    Problem,
    Reason,
    Verdict,
)
from alert_contacts.domain.validation import validate_bot, validate_contact, validate_group
from alert_contacts.settings import Settings

OUR_KINDS = ("Contact", "DingTalkBot", "ContactGroup")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
SECRET_REF_FIELDS = ("spec.webhook.secretRef", "spec.signingSecretRef")
STDIN = "-"

Severity = Literal["error", "note"]


class SourceError(Exception):
    """A file that cannot be read at all (missing, a directory without manifests...)."""


@dataclass(frozen=True)
class Finding:
    severity: Severity
    path: str
    line: int | None
    subject: str  # "Contact team-a/alice", or "" for a file-level finding
    message: str  # usually Problem.message: field, value, reason
    reason: str = ""  # the condition reason the operator would set, when there is one

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        subject = f"{self.subject}: " if self.subject else ""
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{where}: {self.severity}: {subject}{self.message}{reason}"


@dataclass
class Document:
    """One object read from a file, with the YAML node that says where its fields are."""

    path: str
    body: Mapping[str, Any]
    node: Node

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def ref(self) -> ObjectRef:
        meta = self.body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return ObjectRef(self.kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    @property
    def subject(self) -> str:
        ref = self.ref
        where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        return f"{ref.kind} {where}"

    @property
    def where(self) -> str:
        line = field_line(self.node, "")
        return f"{self.path}:{line}"

    def line_of(self, field_path: str) -> int:
        return field_line(self.node, field_path)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # our kinds -> count
    files: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "note"]

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}"
                          for kind, n in self.checked.items() if n) or "no alert-contacts objects"
        errors, notes = len(self.errors), len(self.notes)
        return (f"checked {kinds} in {self.files} file{'' if self.files == 1 else 's'}: "
                f"{errors} error{'' if errors == 1 else 's'}, "
                f"{notes} note{'' if notes == 1 else 's'}")


# ---------------------------------------------------------------- reading


def read_sources(
    paths: list[str], stdin_text: str | None, recursive: bool
) -> list[tuple[str, str]]:
    """``(shown path, text)`` for each file, directory entry (*.yaml, *.yml, *.json) or ``-``."""
    sources: list[tuple[str, str]] = []
    for given in paths:
        if given == STDIN:
            sources.append(("<stdin>", stdin_text or ""))
            continue
        path = Path(given)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern)
                           if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
            if not files:
                raise SourceError(f"{given}: no *.yaml, *.yml or *.json files in this directory"
                                  + ("" if recursive else " (use -R for subdirectories)"))
        else:
            files = [path]
        for file in files:
            try:
                sources.append((str(file), file.read_text(encoding="utf-8")))
            except FileNotFoundError:
                raise SourceError(f"{file}: no such file") from None
            except (OSError, UnicodeDecodeError) as e:
                raise SourceError(f"{file}: cannot read: {e}") from None
    return sources


# ---------------------------------------------------------------- YAML as kubectl reads it

_GO_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_GO_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_GO_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_GO_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_PLAIN = "tag:alert-contacts:plain"  # a plain scalar, typed by go_scalar when constructed


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), then ParseUint: decimal, 0x, 0o, 0b and 0-octal."""
    sign, body = (-1 if text[:1] == "-" else 1), text.lstrip("+-")
    if len(text) - len(body) > 1 or not body:
        return None
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        digits, base = body[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix]
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not digits or any(ch not in "0123456789abcdef"[:base] for ch in digits.lower()):
        return None
    value = sign * int(digits, base)
    if -(2**63) <= value < 2**63 or (text[0].isdigit() and value < 2**64):
        return value
    return None


def go_scalar(text: str) -> Any:
    """The value of a plain (unquoted) YAML scalar as kubectl reads it.

    sigs.k8s.io/yaml (go-yaml v2, into interface{}) knows null, the YAML 1.1
    booleans (``y``, ``yes``, ``on``...), Go integer literals (``0o17``, ``0x1F``,
    ``0755``, ``1_000``), floats with or without a dot (``1e3``) and
    ``.inf``/``.nan``; everything else, timestamps and sexagesimal ``12:30:00``
    included, is a string. Integral floats become ints, as they do on their way
    through JSON to the API server.
    """
    if text in _GO_NULL:
        return None
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    if text in _GO_SPECIAL_FLOATS:
        return _GO_SPECIAL_FLOATS[text]
    if text[0] not in "+-.0123456789":
        return text
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _GO_FLOAT.fullmatch(plain):
        value = float(plain)
        if value in (float("inf"), float("-inf")):
            return text  # out of range for a float64: go-yaml keeps the text
        return int(value) if value.is_integer() else value
    return text


class KubectlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with plain scalars typed as kubectl types them (``go_scalar``)."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0] and value != "<<":
            return _PLAIN
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]

    def construct_plain(self, node: ScalarNode) -> Any:
        return go_scalar(str(self.construct_scalar(node)))


KubectlLoader.add_constructor(_PLAIN, KubectlLoader.construct_plain)


def parse(path: str, text: str) -> tuple[list[Document], list[Finding]]:
    """The objects in a multi-document YAML (or JSON) text; ``kind: List`` is unpacked."""
    documents: list[Document] = []
    loader = KubectlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            body = loader.construct_document(node)
            documents += _objects(path, body, node)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        problem = " ".join(filter(None, (e.context, e.problem)))
        return documents, [Finding("error", path, line, "", f"not valid YAML: {problem}")]
    except yaml.YAMLError as e:
        return documents, [Finding("error", path, None, "", f"not valid YAML: {e}")]
    finally:
        loader.dispose()
    return documents, []


def _objects(path: str, body: Any, node: Node) -> Iterator[Document]:
    if body is None:
        return  # an empty document between two '---'
    if isinstance(body, Mapping) and body.get("kind") == "List" and isinstance(
        body.get("items"), list
    ):
        items_node = _child(node, "items")
        for index, item in enumerate(body["items"]):
            item_node = _child(items_node, index) if items_node is not None else None
            yield from _objects(path, item, item_node or node)
        return
    yield Document(path, body if isinstance(body, Mapping) else {"<not an object>": body}, node)


def _child(node: Node | None, part: str | int) -> Node | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if getattr(key, "value", None) == part:
                return value  # type: ignore[no-any-return]
    if isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def field_line(node: Node, field_path: str) -> int:
    """The 1-based line of ``spec.webhook.secretRef`` or ``spec.contacts[2]`` in the
    document, or of the deepest part of that path that exists."""
    line: int = node.start_mark.line + 1
    current: Node | None = node
    for token in _PATH_PART.findall(field_path):
        part: str | int = int(token[1:-1]) if token.startswith("[") else token
        if isinstance(current, MappingNode) and isinstance(part, str):
            entry = next((k for k, _ in current.value if getattr(k, "value", None) == part), None)
            if entry is None:
                break
            line = entry.start_mark.line + 1
        current = _child(current, part)
        if current is None:
            break
        if isinstance(part, int):
            line = current.start_mark.line + 1
    return line


# ---------------------------------------------------------------- checking


def _secrets(documents: list[Document]) -> dict[tuple[str, str], dict[str, str]]:
    """Secrets among the files, by (namespace, name): what the operator keeps of each
    (``secret_data``, as the operator's Secrets watch: of a Secret of another type
    than Opaque, only its type)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for doc in documents:
        if doc.kind != "Secret" or doc.body.get("apiVersion") != "v1":
            continue
        found[(doc.ref.namespace, doc.ref.name)] = secret_data(_as_stored(doc.body))
    return found


def _as_stored(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret as the API server stores it: ``stringData`` folded into ``data``."""
    data = body.get("data")
    merged = dict(data) if isinstance(data, Mapping) else {}
    string_data = body.get("stringData")
    for key, value in (string_data.items() if isinstance(string_data, Mapping) else ()):
        merged[str(key)] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    return {**body, "data": merged}


def _spec_of(doc: Document) -> Mapping[str, Any] | Problem:
    spec = doc.body.get("spec")
    if spec is None:
        return Problem("spec", None, "is required")
    if not isinstance(spec, Mapping):
        return Problem("spec", None, "must be an object")
    return spec


@dataclass
class _Claimant:
    doc: Document
    verdict: Verdict


class Validator:
    """Checks a set of documents together, as they would be applied together."""

    def __init__(self, documents: list[Document], settings: Settings) -> None:
        self.documents = documents
        self.settings = settings
        self.report = Report()
        self._secrets = _secrets(documents)

    def _add(self, severity: Severity, doc: Document, problem: Problem, reason: str = "") -> None:
        message = problem.message if problem.field else problem.reason
        self.report.findings.append(Finding(
            severity, doc.path, doc.line_of(problem.field), doc.subject, message, reason
        ))

    def run(self) -> Report:
        seen: dict[ObjectRef, Document] = {}
        claimants: list[_Claimant] = []
        groups: list[Document] = []
        for doc in self.documents:
            if not self._is_ours(doc):
                continue
            self.report.checked[doc.kind] = self.report.checked.get(doc.kind, 0) + 1
            metadata = metadata_problems(doc.body.get("metadata"))
            for problem in metadata:
                self._add("error", doc, problem)
            if metadata:
                continue
            if doc.ref in seen:
                self._add("error", doc, Problem(
                    "metadata.name", doc.ref.name,
                    f"the same object is already defined at {seen[doc.ref].where}; "
                    "only one of them would be applied"))
                continue
            seen[doc.ref] = doc
            spec = _spec_of(doc)
            if isinstance(spec, Problem):
                self._add("error", doc, spec, Reason.INVALID_SPEC)
            elif doc.kind == "ContactGroup":
                self._check_group(doc, spec)
                groups.append(doc)
            else:
                verdict = self._verdict(doc, spec)
                if verdict is not None:
                    claimants.append(_Claimant(doc, verdict))
        self._check_together(claimants)
        self._check_members(groups, set(seen))
        return self.report

    def _is_ours(self, doc: Document) -> bool:
        api_version = str(doc.body.get("apiVersion") or "")
        if doc.kind in OUR_KINDS and api_version == API_VERSION:
            return True
        if api_version.split("/")[0] == GROUP:
            self._add("error", doc, Problem(
                "apiVersion", api_version,
                f"this operator serves kinds {', '.join(OUR_KINDS)} in version {API_VERSION}"))
        elif "<not an object>" in doc.body:
            self.report.findings.append(Finding(
                "error", doc.path, doc.line_of(""), "", "this document is not a Kubernetes object"))
        return False

    def _verdict(self, doc: Document, spec: Mapping[str, Any]) -> Verdict | None:
        """The verdict of a Contact or DingTalkBot, its problems reported; None when invalid."""
        if doc.kind == "Contact":
            verdict = validate_contact(spec, self.settings)
            missing: set[tuple[str, str]] = set()
        else:
            verdict, missing = self._bot_verdict(doc, spec)
        for problem in verdict.problems:
            if _is_missing_secret(problem, spec, missing):
                self._add("note", doc, Problem(
                    problem.field, None,
                    f"{_ref_text(spec, problem.field)} is not in the given files, so it was not "
                    "checked offline; the operator checks it in the cluster"))
            else:
                self._add("error", doc, problem, verdict.reason)
        return verdict if verdict.valid else None

    def _bot_verdict(
        self, doc: Document, spec: Mapping[str, Any]
    ) -> tuple[Verdict, set[tuple[str, str]]]:
        missing: set[tuple[str, str]] = set()
        namespace = doc.ref.namespace

        def resolve(name: str, key: str) -> str | NotOpaque | None:
            value = secret_value(self._secrets.get((namespace, name)), key)
            if value is None:
                missing.add((name, key))
            return value

        return validate_bot(spec, resolve, self.settings), missing

    def _check_group(self, doc: Document, spec: Mapping[str, Any]) -> None:
        for problem in validate_group(spec).problems:
            self._add("error", doc, problem, Reason.INVALID_SPEC)

    def _check_together(self, claimants: list[_Claimant]) -> None:
        """Uniqueness and quota among the files: the first document in file order wins."""
        by_ref = {c.doc.ref: c for c in claimants}
        order = {c.doc.ref: f"{index:08d}" for index, c in enumerate(claimants)}
        decisions = decide(
            [Candidate(c.doc.ref, order[c.doc.ref], c.verdict) for c in claimants],
            self.settings.quota,
        )
        for ref, decision in decisions.items():
            claimant = by_ref[ref]
            for conflict in decision.conflicts:
                owner = by_ref[conflict.owner]
                self._add("error", claimant.doc, Problem(
                    _claim_field(conflict.claim, claimant.doc),
                    _claim_value(conflict.claim, claimant.doc),
                    f"{describe_claim(conflict.claim)} is already used by {owner.doc.subject} "
                    f"at {owner.doc.where}",
                ), conflict.reason)
            if decision.reason is Reason.QUOTA_EXCEEDED:
                self._add("error", claimant.doc, Problem("", None, _quota_text(
                    decision, self.settings.quota)), Reason.QUOTA_EXCEEDED)

    def _check_members(self, groups: list[Document], defined: set[ObjectRef]) -> None:
        for doc in groups:
            spec = doc.body.get("spec")
            if not isinstance(spec, Mapping):
                continue
            for ref in member_refs(doc.ref.namespace, spec):
                if ref not in defined:
                    field_name = "spec.contacts" if ref.kind == "Contact" else "spec.dingTalkBots"
                    self._add("note", doc, Problem(
                        field_name, ref.name,
                        f"{member_label(ref)} is not defined in the given files; the group "
                        f"reports it as missing ({Reason.MEMBERS_MISSING}) unless it exists in "
                        "the cluster"))


# ---------------------------------------------------------------- metadata, as the API server

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN_RULE = (
    "must be a lowercase RFC 1123 subdomain: lower-case letters, digits, '-' and '.', starting"
    " and ending with a letter or digit, at most 253 characters"
)
_LABEL_RULE = (
    "must be a lowercase RFC 1123 label: lower-case letters, digits and '-', starting and"
    " ending with a letter or digit, at most 63 characters"
)
_QUALIFIED_RULE = (
    "must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63"
    " letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)
_LABEL_VALUE_RULE = (
    "must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with"
    " a letter or digit"
)


def _qualified_name(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def metadata_problems(metadata: Any) -> list[Problem]:
    """What the API server would refuse in an object's metadata (kubectl apply needs a name)."""
    if metadata is None:
        return [Problem("metadata.name", None, "is required (kubectl apply needs a name)")]
    if not isinstance(metadata, Mapping):
        return [Problem("metadata", None, "must be an object")]
    problems: list[Problem] = []
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if name is None or name == "":
        problems.append(Problem("metadata.name", None, "is required (kubectl apply needs a name)"))
    elif not isinstance(name, str):
        problems.append(Problem("metadata.name", str(name), "must be a string (quote it in YAML)"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        problems.append(Problem("metadata.name", name, _SUBDOMAIN_RULE))
    if namespace is not None and namespace != "":
        if not isinstance(namespace, str):
            problems.append(Problem("metadata.namespace", str(namespace),
                                    "must be a string (quote it in YAML)"))
        elif len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
            problems.append(Problem("metadata.namespace", namespace, _LABEL_RULE))
    for field_name in ("labels", "annotations"):
        entries = metadata.get(field_name)
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            problems.append(Problem(f"metadata.{field_name}", None, "must be an object"))
            continue
        for key, value in entries.items():
            where = f"metadata.{field_name}.{key}"
            if not isinstance(key, str) or not _qualified_name(key):
                problems.append(Problem(where, None, f"the key {_QUALIFIED_RULE}"))
            if not isinstance(value, str):
                shown = None if value is None else str(value).lower()
                problems.append(Problem(where, shown, "must be a string (quote it in YAML)"))
            elif field_name == "labels" and value and (
                len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)
            ):
                problems.append(Problem(where, value, _LABEL_VALUE_RULE))
    return problems


def _quota_text(decision: Decision, quota: int) -> str:
    return (f"the files alone hold more Contacts and DingTalkBots than the quota of {quota};"
            f" this one is number {decision.position} in file order")


def _claim_field(claim: Claim, doc: Document) -> str:
    if claim.kind != "webhook":
        return f"spec.{claim.kind}"
    webhook = doc.body.get("spec", {}).get("webhook") or {}
    return "spec.webhook.url" if webhook.get("url") else "spec.webhook.secretRef"


def _claim_value(claim: Claim, doc: Document) -> str | None:
    if claim.kind == "webhook":
        return None  # a credential: describe_claim shows its last characters only
    written = doc.body.get("spec", {}).get(claim.kind)
    return str(written) if written is not None else claim.value


def _ref_at(spec: Mapping[str, Any], field_path: str) -> Any:
    ref: Any = spec
    for part in field_path.removeprefix("spec.").split("."):
        ref = ref.get(part) if isinstance(ref, Mapping) else None
    return ref


def _ref_text(spec: Mapping[str, Any], field_path: str) -> str:
    ref = _ref_at(spec, field_path)
    if isinstance(ref, Mapping):
        return f"Secret {ref.get('name')!r} key {ref.get('key')!r}"
    return "the referenced Secret"


def _is_missing_secret(
    problem: Problem, spec: Mapping[str, Any], missing: set[tuple[str, str]]
) -> bool:
    """Whether ``problem`` only says a Secret the files do not hold could not be read."""
    if problem.value is not None or problem.field not in SECRET_REF_FIELDS:
        return False
    ref = _ref_at(spec, problem.field)
    return isinstance(ref, Mapping) and (ref.get("name"), ref.get("key")) in missing


def validate_sources(sources: list[tuple[str, str]], settings: Settings) -> Report:
    documents: list[Document] = []
    parse_findings: list[Finding] = []
    for path, text in sources:
        parsed, findings = parse(path, text)
        documents += parsed
        parse_findings += findings
    report = Validator(documents, settings).run()
    # Findings in reading order: by file as given, then by line.
    position = {path: index for index, (path, _) in enumerate(sources)}
    report.findings = sorted([*parse_findings, *report.findings],
                             key=lambda f: (position.get(f.path, 0), f.line or 0))
    report.files = len(sources)
    return report
