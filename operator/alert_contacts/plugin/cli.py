"""Arguments, commands, confirmation and exit codes of ``kubectl contacts``.

Exit codes: 0 success (a search that finds nothing included, as with
``kubectl get``), 1 an error (the cluster, a name not found, invalid
manifests, a deletion not confirmed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from alert_contacts.domain.delivery import namespace_token
from alert_contacts.domain.groups import member_label, member_refs
from alert_contacts.domain.types import GROUP
from alert_contacts.plugin import render
from alert_contacts.plugin.cluster import ClusterError, ConnectOptions, Store, connect
from alert_contacts.plugin.search import Filters, search
from alert_contacts.plugin.validate import SourceError, read_sources, validate_sources
from alert_contacts.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PROG = "kubectl contacts"

# What `delete KIND/NAME` accepts for KIND: kubectl's spellings of our two kinds.
KIND_NAMES = {
    alias: kind
    for kind, plural, short in (("Contact", "contacts", "ct"), ("DingTalkBot", "dingtalkbots",
                                                                   "dtbot"))
    for alias in (kind.lower(), plural, short, f"{kind.lower()}.{GROUP}", f"{plural}.{GROUP}")
}

EXAMPLES = """\
examples:
  kubectl contacts search --name ali                 # name or display name contains "ali"
  kubectl contacts search --mobile 1380013 -A        # digits only: finds +86 138 0013 8000
  kubectl contacts search --email @example.com -o json
  kubectl contacts list -n team-a
  kubectl contacts delete alice bob -n team-a        # shows what goes, then asks
  kubectl contacts delete -l team=payments --yes
  kubectl contacts validate -f contacts/ -R          # offline; exit code 1 on errors
  kubectl contacts test bot oncall -n team-a         # send a test message, print the result
  kubectl contacts test group sre --timeout 2m       # every bot and email of the group
  kubectl -n alert-contacts-system get secret alert-contacts-operator-receiver \
    -o jsonpath='{.data.token}' | base64 -d | kubectl contacts receiver-token -n team-a
"""

Connect = Callable[[ConnectOptions], Store]

SEND_TEST = f"{GROUP}/send-test"
TEST_KINDS = {"bot": "DingTalkBot", "group": "ContactGroup"}
TEST_POLL_SECONDS = 1.0


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- arguments


def _connection_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Accepted before and after the command, like kubectl's global flags; the
    # copies on each command must not overwrite a value given before it.
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("cluster (as kubectl)")
    group.add_argument("--kubeconfig", default=default, metavar="FILE",
                       help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--context", default=default, help="kubeconfig context to use")
    group.add_argument("-n", "--namespace", default=default,
                       help="namespace (default: the context's namespace, else default)")
    group.add_argument("--request-timeout", default=argparse.SUPPRESS if suppress else "30s",
                       metavar="DURATION", help="per API call, e.g. 10s or 1m (default 30s)")


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="look in all namespaces")
    parser.add_argument("-l", "--selector", help="label selector, e.g. team=payments")
    parser.add_argument("-o", "--output", choices=render.OUTPUTS, default="table",
                        help="table (default), json or yaml (a v1 List of the objects), name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Search, list, delete, validate and test alert Contacts, DingTalkBots "
        "and ContactGroups.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_flags(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    found = commands.add_parser(
        "search", help="find contacts by name, mobile or email (whole or part of the value)",
        description="Find Contacts (and, by --name, DingTalkBots) by whole or partial values, "
        "ignoring case. --name matches metadata.name and spec.displayName; --mobile matches "
        "digits only (so 1380013 finds '+86 138 0013 8000'); --email matches the address. "
        "Filters given together must all match. Bots have no mobile or email, so --mobile "
        "and --email find Contacts only.",
    )
    found.add_argument("--name", help="part of the name or display name")
    found.add_argument("--mobile", help="some digits of the mobile number")
    found.add_argument("--email", help="part of the email address")
    _output_flags(found)
    _connection_flags(found, suppress=True)

    listing = commands.add_parser(
        "list", help="list contacts and DingTalk bots with Ready and Reason",
        description="List Contacts and DingTalkBots with their Ready condition and its reason.",
    )
    _output_flags(listing)
    _connection_flags(listing, suppress=True)

    delete = commands.add_parser(
        "delete", help="delete contacts or bots by name or label selector, after confirmation",
        description="Delete Contacts and DingTalkBots in one namespace. Shows what will be "
        "deleted and which groups list it, then asks; without a terminal, pass --yes. "
        "NAME may be KIND/NAME (contact/alice, dingtalkbot/oncall) when a Contact and a "
        "DingTalkBot share a name.",
    )
    delete.add_argument("names", nargs="*", metavar="NAME")
    delete.add_argument("-l", "--selector", help="delete what matches this label selector")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _connection_flags(delete, suppress=True)

    check = commands.add_parser(
        "validate", help="check manifests offline with the admission webhook's validation",
        description="Check Contacts, DingTalkBots and ContactGroups in YAML/JSON files without a "
        "cluster: each object with the operator's own validation, and mobile numbers, emails and "
        "webhook tokens for duplicates among the files. Secrets in the files are used for bots' "
        "secretRefs; a Secret that is not there is a note, not an error. Exit code 1 on errors.",
    )
    check.add_argument("-f", "--filename", dest="files", action="append", required=True,
                       metavar="FILE", help="file, directory or - for stdin (repeatable)")
    check.add_argument("-R", "--recursive", action="store_true",
                       help="read directories given with -f recursively")
    check.add_argument("--quota", default=None, help="[env ALERT_CONTACTS_QUOTA, default 100]")
    check.add_argument("--default-region", default=None,
                       help="region of numbers without +country code "
                       "[env ALERT_CONTACTS_DEFAULT_REGION, default CN]")
    check.add_argument("--dingtalk-hosts", default=None,
                       help="allowed webhook hosts, comma-separated "
                       "[env ALERT_CONTACTS_DINGTALK_HOSTS, default oapi.dingtalk.com]")
    _connection_flags(check, suppress=True)  # accepted for symmetry, never used: offline

    test = commands.add_parser(
        "test", help="send a test message to a DingTalk bot or a whole group; print the result",
        description="Set the alerting.contacts.dev/send-test annotation to a new value; the "
        "operator sends one clearly marked test message (a group: to every Ready bot and the "
        "emails of its Ready contacts) and records status.lastTest. Waits for that record and "
        "prints it. Exit code 1 when the test failed or no result came in time.",
    )
    test.add_argument("kind", choices=sorted(TEST_KINDS), metavar="bot|group",
                      help="bot (a DingTalkBot) or group (a ContactGroup)")
    test.add_argument("name", metavar="NAME")
    test.add_argument("--timeout", default="90s", metavar="DURATION",
                      help="how long to wait for the result (default 90s)")
    _connection_flags(test, suppress=True)

    token = commands.add_parser(
        "receiver-token", help="derive a namespace's receiver token from the master token",
        description="Print the bearer token that opens the receiver for -n NAMESPACE's "
        "groups only: HMAC-SHA256 of the namespace keyed with the receiver's master token "
        "(read from stdin, never an argument), in hex. Offline.",
    )
    _connection_flags(token, suppress=True)
    return parser


def parse_duration(text: str) -> float:
    """Seconds in kubectl's --request-timeout forms: 30, 30s, 1m, 1h (0 means no timeout)."""
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    scale = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        seconds = float(number) * scale
    except ValueError:
        raise UsageError(f"--request-timeout {text!r}: use seconds, e.g. 30s or 1m") from None
    if seconds < 0:
        raise UsageError(f"--request-timeout {text!r}: must not be negative")
    return seconds


# ---------------------------------------------------------------- delete, pure parts


def pick_targets(
    objects: Sequence[Mapping[str, Any]], names: Sequence[str], namespace: str
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The objects ``delete NAME...`` means, and a problem per name that cannot be resolved."""
    targets: dict[tuple[str, str], Mapping[str, Any]] = {}
    problems: list[str] = []
    for given in names:
        kind_text, slash, name = given.rpartition("/")
        kind = KIND_NAMES.get(kind_text.lower()) if slash else None
        if slash and kind is None:
            raise UsageError(f"{given}: unknown kind {kind_text!r}; use contact/NAME or "
                             "dingtalkbot/NAME")
        matching = [obj for obj in objects
                    if obj.get("metadata", {}).get("name") == name
                    and (kind is None or obj.get("kind") == kind)]
        if not matching:
            what = kind or "Contact or DingTalkBot"
            problems.append(f"{given}: no {what} named {name!r} in namespace {namespace}")
        elif len(matching) > 1:
            problems.append(f"{given}: both contact/{name} and dingtalkbot/{name} exist; "
                            f"name one: contact/{name} or dingtalkbot/{name}")
        else:
            obj = matching[0]
            targets[(str(obj.get("kind")), name)] = obj
    return list(targets.values()), problems


def groups_listing(
    groups: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """``contactgroup/NAME`` -> the targets it lists (they would become missing members)."""
    going = {(t.get("kind"), t.get("metadata", {}).get("name")) for t in targets}
    affected: dict[str, list[str]] = {}
    for group in groups:
        spec = group.get("spec")
        metadata = group.get("metadata", {})
        refs = member_refs(str(metadata.get("namespace") or ""),
                           spec if isinstance(spec, Mapping) else {})
        hit = [member_label(ref) for ref in refs if (ref.kind, ref.name) in going]
        if hit:
            affected[f"contactgroup/{metadata.get('name')}"] = hit
    return affected


# ---------------------------------------------------------------- test, pure parts


def send_test_value(now: datetime.datetime, nonce: str) -> str:
    """A fresh annotation value: readable time plus a nonce (two runs in one second differ)."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{nonce}"


def send_test_result(obj: Mapping[str, Any] | None, request: str) -> Mapping[str, Any] | None:
    """``status.lastTest`` once it answers ``request``, else None."""
    status = (obj or {}).get("status")
    last = status.get("lastTest") if isinstance(status, Mapping) else None
    if isinstance(last, Mapping) and last.get("request") == request:
        return last
    return None


# ---------------------------------------------------------------- commands


class Commands:
    def __init__(self, args: argparse.Namespace, connect: Connect,
                 stdin: IO[str], out: IO[str], err: IO[str]) -> None:
        self.args = args
        self._connect = connect
        self.stdin, self.out, self.err = stdin, out, err

    def store(self) -> Store:
        args = self.args
        return self._connect(ConnectOptions(
            kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace,
            request_timeout=parse_duration(args.request_timeout),
        ))

    def _show(self, objects: Sequence[Mapping[str, Any]], store: Store) -> int:
        args = self.args
        if not objects and args.output == "table":
            where = "in any namespace" if args.all_namespaces else (
                f"in namespace {store.namespace}")
            self.err.write(f"No contacts or DingTalk bots found {where}.\n")
            return EXIT_OK
        self.out.write(render.render(objects, args.output, all_namespaces=args.all_namespaces))
        return EXIT_OK

    def cmd_search(self) -> int:
        args = self.args
        filters = Filters(args.name, args.mobile, args.email)
        if filters.problems():
            raise UsageError("; ".join(filters.problems()))
        store = self.store()
        namespace = None if args.all_namespaces else store.namespace
        return self._show(search(store.list_members(namespace, args.selector), filters), store)

    def cmd_list(self) -> int:
        store = self.store()
        namespace = None if self.args.all_namespaces else store.namespace
        return self._show(store.list_members(namespace, self.args.selector), store)

    def cmd_delete(self) -> int:
        args = self.args
        if args.names and args.selector:
            raise UsageError("give NAMEs or -l SELECTOR, not both")
        if not args.names and not args.selector:
            raise UsageError("give the NAMEs to delete, or -l SELECTOR")
        store = self.store()
        namespace = store.namespace
        if args.selector:
            targets: Sequence[Mapping[str, Any]] = store.list_members(namespace, args.selector)
            if not targets:
                self.err.write(f"No contacts or DingTalk bots in namespace {namespace} match "
                               f"{args.selector!r}; nothing to delete.\n")
                return EXIT_OK
        else:
            targets, problems = pick_targets(store.list_members(namespace, None), args.names,
                                             namespace)
            if problems:
                for problem in problems:
                    self.err.write(f"error: {problem}\n")
                self.err.write("Nothing deleted.\n")
                return EXIT_ERROR
        targets = sorted(targets, key=render.sort_key)
        self._describe_deletion(targets, store.list_groups(namespace), namespace)
        if not args.yes and not self._confirmed(len(targets), namespace):
            return EXIT_ERROR
        return self._delete_all(targets, store, namespace)

    def _describe_deletion(self, targets: Sequence[Mapping[str, Any]],
                           groups: Sequence[Mapping[str, Any]], namespace: str) -> None:
        count = len(targets)
        self.out.write(f"{count} object{'' if count == 1 else 's'} will be deleted from "
                       f"namespace {namespace}:\n")
        self.out.write(render.object_table(targets, all_namespaces=False))
        affected = groups_listing(groups, targets)
        if affected:
            self.out.write("These groups list them and will report them missing "
                           "(MembersMissing):\n")
            for group, members in sorted(affected.items()):
                self.out.write(f"  {group}: {', '.join(members)}\n")

    def _confirmed(self, count: int, namespace: str) -> bool:
        if not self.stdin.isatty():
            self.err.write("error: refusing to delete without confirmation: stdin is not a "
                           "terminal. Pass --yes to delete non-interactively. Nothing deleted.\n")
            return False
        self.out.write(f"Delete {'it' if count == 1 else f'these {count}'} from namespace "
                       f"{namespace}? [y/N]: ")
        self.out.flush()
        answer = self.stdin.readline().strip().lower()
        if answer in ("y", "yes"):
            return True
        self.err.write("Nothing deleted.\n")
        return False

    def _delete_all(self, targets: Sequence[Mapping[str, Any]], store: Store,
                    namespace: str) -> int:
        failed = 0
        for target in targets:
            label = render.short_name(target)
            try:
                gone = store.delete(str(target.get("kind")), namespace,
                                    str(target.get("metadata", {}).get("name")))
            except ClusterError as e:
                failed += 1
                self.err.write(f"error: {label}: {e}\n")
                continue
            self.out.write(f"{label} deleted\n" if gone else f"{label} was already gone\n")
        return EXIT_ERROR if failed else EXIT_OK

    def cmd_test(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> int:
        args = self.args
        kind = TEST_KINDS[args.kind]
        timeout = parse_duration(args.timeout)
        store = self.store()
        namespace = store.namespace
        label = f"{kind.lower()}/{args.name}"
        if store.get(kind, namespace, args.name) is None:
            self.err.write(f"error: no {kind} {args.name!r} in namespace {namespace}\n")
            return EXIT_ERROR
        request = send_test_value(datetime.datetime.now(datetime.UTC), secrets.token_hex(3))
        store.annotate(kind, namespace, args.name, SEND_TEST, request)
        self.err.write(f"{label}: test {request} requested; waiting up to {args.timeout} "
                       "for the operator\n")
        deadline = clock() + timeout
        while True:
            result = send_test_result(store.get(kind, namespace, args.name), request)
            if result is not None:
                outcome = str(result.get("result", "Failed"))
                self.out.write(f"{label}: {outcome}: {result.get('message', '')}\n")
                return EXIT_OK if outcome == "Succeeded" else EXIT_ERROR
            if clock() >= deadline:
                self.err.write(
                    f"error: {label}: no result within {args.timeout}: is the operator running "
                    f"(and, with several replicas, the leader), and is the object Ready? "
                    f"See kubectl get {kind.lower()} -n {namespace} {args.name} -o yaml\n")
                return EXIT_ERROR
            sleep(TEST_POLL_SECONDS)

    def cmd_receiver_token(self) -> int:
        if not self.args.namespace:
            raise UsageError("-n NAMESPACE is required (the namespace the token is for)")
        master = self.stdin.read().strip()
        if not master:
            raise UsageError("pipe the receiver's master token on stdin")
        self.out.write(namespace_token(master, self.args.namespace) + "\n")
        return 0

    def cmd_validate(self) -> int:
        args = self.args
        env = {**os.environ}
        for var, value in (("ALERT_CONTACTS_QUOTA", args.quota),
                           ("ALERT_CONTACTS_DEFAULT_REGION", args.default_region),
                           ("ALERT_CONTACTS_DINGTALK_HOSTS", args.dingtalk_hosts)):
            if value is not None:
                env[var] = value
        try:
            settings = Settings.from_env(env)
        except ValueError as e:
            raise UsageError(str(e)) from None
        stdin_text = self.stdin.read() if "-" in args.files else None
        try:
            sources = read_sources(args.files, stdin_text, args.recursive)
        except SourceError as e:
            self.err.write(f"error: {e}\n")
            return EXIT_ERROR
        report = validate_sources(sources, settings)
        for finding in report.findings:
            self.out.write(f"{finding}\n")
        self.err.write(f"{report.summary()}\n")
        return EXIT_ERROR if report.errors else EXIT_OK


# ---------------------------------------------------------------- entry point


def run(
    argv: Sequence[str],
    *,
    connect: Connect = connect,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Run one command; return the exit code. Streams default to the process's own."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:  # --help (0) or a usage error argparse has printed (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    commands = Commands(args, connect, stdin, out, err)
    try:
        command: Callable[[], int] = {
            "search": commands.cmd_search, "list": commands.cmd_list,
            "delete": commands.cmd_delete, "validate": commands.cmd_validate,
            "test": commands.cmd_test, "receiver-token": commands.cmd_receiver_token,
        }[args.command]
        result = command()
    except UsageError as e:
        err.write(f"{PROG} {args.command}: error: {e}\n"
                  f"See '{PROG} {args.command} --help'.\n")
        return EXIT_USAGE
    except ClusterError as e:
        err.write(f"error: {e}\n")
        return EXIT_ERROR
    return result


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        # `kubectl contacts list | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
