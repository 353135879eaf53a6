"""`kubectl contacts test bot|group NAME`: annotate, wait for status.lastTest, exit code."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from alert_contacts.plugin import cli
from alert_contacts.plugin.cluster import ConnectOptions


@dataclass
class OperatorLike:
    """A fake cluster whose "operator" answers a test request after ``answer_after`` reads."""

    result: str | None = "Succeeded"
    answer_after: int = 2
    namespace: str = "team-a"
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    annotations: list[tuple[str, str, str, str]] = field(default_factory=list)
    reads: int = 0

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, name))
        if obj is None:
            return None
        self.reads += 1
        value = obj["metadata"].get("annotations", {}).get(cli.SEND_TEST)
        if value and self.result and self.reads > self.answer_after:
            obj["status"] = {"lastTest": {"request": value, "result": self.result,
                                          "time": "2026-11-26T12:00:00Z",
                                          "message": "dingtalkbot/oncall: delivered"}}
        return obj

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        self.annotations.append((kind, namespace, name, value))
        self.objects[(kind, name)]["metadata"].setdefault("annotations", {})[key] = value


def run_test(argv: list[str], store: OperatorLike) -> tuple[int, str, str, float]:
    now = [0.0]
    args = cli.build_parser().parse_args(["test", *argv])
    out, err = io.StringIO(), io.StringIO()

    def connect(options: ConnectOptions) -> Any:
        if options.namespace:
            store.namespace = options.namespace
        return store

    def sleep(seconds: float) -> None:
        now[0] += seconds

    commands = cli.Commands(args, connect, io.StringIO(), out, err)
    code = commands.cmd_test(clock=lambda: now[0], sleep=sleep)
    return code, out.getvalue(), err.getvalue(), now[0]


def bot_store(**kwargs: Any) -> OperatorLike:
    store = OperatorLike(**kwargs)
    store.objects[("DingTalkBot", "oncall")] = {"metadata": {"name": "oncall"}, "status": {}}
    store.objects[("ContactGroup", "sre")] = {"metadata": {"name": "sre"}, "status": {}}
    return store


def test_a_successful_test_prints_the_result_and_exits_0() -> None:
    store = bot_store()
    code, out, _, _ = run_test(["bot", "oncall", "-n", "team-a"], store)
    assert code == 0 and "Succeeded" in out
    [(kind, namespace, name, value)] = store.annotations
    assert (kind, namespace, name) == ("DingTalkBot", "team-a", "oncall") and value


def test_a_failed_test_exits_1() -> None:
    code, out, _, _ = run_test(["group", "sre"], bot_store(result="Failed"))
    assert code == 1 and "Failed" in out


def test_no_answer_within_the_timeout_exits_1_and_says_what_to_check() -> None:
    code, _, err, waited = run_test(["bot", "oncall", "--timeout", "5s"], bot_store(result=None))
    assert code == 1 and "no result within 5s" in err
    assert 5 <= waited <= 6


def test_an_old_result_for_another_request_is_not_taken_for_this_one() -> None:
    store = bot_store(answer_after=3)
    store.objects[("DingTalkBot", "oncall")]["status"] = {
        "lastTest": {"request": "older", "result": "Failed", "message": "old"}}
    code, out, _, _ = run_test(["bot", "oncall"], store)
    assert code == 0 and "old" not in out


def test_every_run_asks_with_a_fresh_value() -> None:
    store = bot_store()
    run_test(["bot", "oncall"], store)
    run_test(["bot", "oncall"], store)
    assert len({a[3] for a in store.annotations}) == 2


def test_an_unknown_object_exits_1_without_annotating() -> None:
    store = bot_store()
    code, _, err, _ = run_test(["bot", "ghost"], store)
    assert code == 1 and "ghost" in err and store.annotations == []
