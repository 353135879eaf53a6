"""ContactGroup member resolution and conditions."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alert_contacts.domain.conditions import status_patch
from alert_contacts.domain.groups import (
    evaluate_group,
    group_conditions,
    group_status,
    member_refs,
)
from alert_contacts.domain.types import ObjectRef, Reason

NS = "team-a"


def c(name: str) -> ObjectRef:
    return ObjectRef("Contact", NS, name)


def b(name: str) -> ObjectRef:
    return ObjectRef("DingTalkBot", NS, name)


def _table(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {x["type"]: (x["status"], x["reason"]) for x in conditions}


def test_all_members_ready() -> None:
    spec = {"contacts": ["alice", "bob"], "dingTalkBots": ["oncall"]}
    decision = evaluate_group(NS, spec, {c("alice"): True, c("bob"): True, b("oncall"): True})
    assert decision.ready
    assert decision.reason is Reason.ACCEPTED
    assert decision.message == "all 3 members are ready"
    assert decision.members_status() == {
        "ready": 3,
        "total": 3,
        "summary": "3/3",
        "missing": [],
        "notReady": [],
    }
    assert _table(group_conditions(decision, 2)) == {
        "Ready": ("True", "Accepted"),
        "MembersResolved": ("True", "MembersResolved"),
    }


def test_no_members_is_stalled() -> None:
    specs: list[dict[str, Any]] = [{}, {"contacts": [], "dingTalkBots": None}]
    for spec in specs:
        decision = evaluate_group(NS, spec, {})
        assert decision.reason is Reason.NO_MEMBERS
        assert decision.members_status()["summary"] == "0/0"
        assert _table(group_conditions(decision, 1)) == {
            "Ready": ("False", "NoMembers"),
            "MembersResolved": ("False", "NoMembers"),
            "Stalled": ("True", "NoMembers"),
        }


def test_missing_members_are_named_with_their_kind() -> None:
    spec = {"contacts": ["zed", "alice", "oncall"], "dingTalkBots": ["oncall"]}
    decision = evaluate_group(NS, spec, {c("alice"): False, c("oncall"): True})
    assert decision.reason is Reason.MEMBERS_MISSING
    assert decision.missing == ("contact/zed", "dingtalkbot/oncall")
    assert decision.not_ready == ("contact/alice",)
    assert decision.members_status() == {
        "ready": 1,
        "total": 4,
        "summary": "1/4",
        "missing": ["contact/zed", "dingtalkbot/oncall"],
        "notReady": ["contact/alice"],
    }
    assert decision.message == (
        "members not found in namespace team-a: contact/zed, dingtalkbot/oncall; "
        "members not ready: contact/alice"
    )
    conditions = {x["type"]: x for x in group_conditions(decision, 1)}
    assert _table(list(conditions.values())) == {
        "Ready": ("False", "MembersMissing"),
        "MembersResolved": ("False", "MembersMissing"),
        "Reconciling": ("True", "MembersMissing"),
    }
    assert conditions["MembersResolved"]["message"] == (
        "members not found in namespace team-a: contact/zed, dingtalkbot/oncall"
    )


def test_members_not_ready() -> None:
    spec = {"contacts": ["alice", "bob"]}
    decision = evaluate_group(NS, spec, {c("alice"): True, c("bob"): False})
    assert decision.reason is Reason.MEMBERS_NOT_READY
    assert decision.message == "members not ready: contact/bob"
    assert decision.members_status()["summary"] == "1/2"
    assert _table(group_conditions(decision, 1)) == {
        "Ready": ("False", "MembersNotReady"),
        "MembersResolved": ("True", "MembersResolved"),
        "Reconciling": ("True", "MembersNotReady"),
    }


def test_duplicate_names_count_once_and_members_of_other_namespaces_do_not_count() -> None:
    spec = {"contacts": ["alice", "alice"], "dingTalkBots": ["x", "x"]}
    ready = {c("alice"): True, ObjectRef("DingTalkBot", "elsewhere", "x"): True}
    decision = evaluate_group(NS, spec, ready)
    assert (decision.total, decision.ready_count, decision.missing) == (
        2,
        1,
        ("dingtalkbot/x",),
    )
    assert member_refs(NS, spec) == [c("alice"), b("x")]


def test_long_member_lists_are_shortened_in_messages_only() -> None:
    names = [f"m{i:03d}" for i in range(500)]
    decision = evaluate_group(NS, {"contacts": names}, {})
    assert len(decision.missing) == 500
    assert decision.message.endswith("and 480 more")
    assert len(decision.message) < 1000


def test_group_status_writes_once() -> None:
    decision = evaluate_group(NS, {"contacts": ["alice"]}, {})
    desired = group_status(decision, 1)
    patch = status_patch(None, desired, now="2024-01-01T00:00:00Z")
    assert patch is not None
    stored = patch["status"]
    assert stored["members"]["missing"] == ["contact/alice"]
    assert status_patch(stored, group_status(decision, 1)) is None
    resolved = evaluate_group(NS, {"contacts": ["alice"]}, {c("alice"): True})
    assert status_patch(stored, group_status(resolved, 1)) is not None


_names = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=6)


@given(_names, _names, st.dictionaries(st.sampled_from("abcd"), st.booleans()), st.data())
def test_counts_add_up(
    contacts: list[str], bots: list[str], states: dict[str, bool], data: st.DataObject
) -> None:
    ready = {data.draw(st.sampled_from([c(n), b(n)])): state for n, state in states.items()}
    decision = evaluate_group(NS, {"contacts": contacts, "dingTalkBots": bots}, ready)
    members = decision.members_status()
    assert members["total"] == len(set(contacts)) + len(set(bots))
    assert (
        members["ready"] + len(members["missing"]) + len(members["notReady"]) == (members["total"])
    )
    assert members["missing"] == sorted(members["missing"])
    assert decision.ready == (members["total"] > 0 and members["ready"] == members["total"])
