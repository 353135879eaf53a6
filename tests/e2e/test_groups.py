"""Contact groups: members by name in the group's namespace, reported rather than refused
(GitOps applies in any order), re-evaluated whenever a member appears, changes
readiness or goes away.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    condition,
    manifest,
    put_secret,
    refusal,
    unique_email,
    unique_token,
    wait_for_condition,
)


def group_is(cluster: Cluster, namespace: str, name: str, status: str, reason: str
             ) -> dict[str, Any]:
    return wait_for_condition(cluster, "ContactGroup", namespace, name, "Ready", status,
                              reason=reason)


def message(obj: dict[str, Any], type_: str = "Ready") -> str:
    return str((condition(obj, type_) or {}).get("message"))


def test_a_group_follows_its_members(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    bob_email, token = unique_email("bob"), unique_token()
    cluster.create("Contact", namespace, "a-elder", {"email": unique_email("a-elder")})
    wait_for_condition(cluster, "Contact", namespace, "a-elder", "Ready", "True")

    missing = f"members not found in namespace {namespace}: "
    spec = {"displayName": "SRE on call", "contacts": ["bob", "alice"], "dingTalkBots": ["pager"]}
    result = cluster.kubectl("apply", "-f", "-",
                             input=manifest("ContactGroup", namespace, "oncall", spec))
    everyone = "contact/alice, contact/bob, dingtalkbot/pager"
    assert f"Warning: {missing}{everyone}" in result.stderr
    group = group_is(cluster, namespace, "oncall", "False", "MembersMissing")
    assert message(group) == missing + everyone
    assert group["status"]["members"] == {
        "ready": 0, "total": 3, "summary": "0/3",
        "missing": ["contact/alice", "contact/bob", "dingtalkbot/pager"], "notReady": [],
    }
    resolved = condition(group, "MembersResolved")
    assert resolved is not None and (resolved["status"], resolved["reason"]) == (
        "False", "MembersMissing")
    assert condition(group, "Stalled") is None  # waiting for others is not stalled

    cluster.create("Contact", namespace, "alice", {"email": unique_email("alice")})
    cluster.create("Contact", namespace, "bob", {"email": bob_email})
    cluster.create("DingTalkBot", namespace, "pager",
                   {"webhook": {"secretRef": {"name": "pager", "key": "url"}}})
    group = group_is(cluster, namespace, "oncall", "False", "MembersNotReady")
    assert message(group) == "members not ready: dingtalkbot/pager"
    put_secret(cluster, namespace, "pager", {"url": DINGTALK_URL + token})
    group = group_is(cluster, namespace, "oncall", "True", "Accepted")
    assert group["status"]["members"] == {
        "ready": 3, "total": 3, "summary": "3/3", "missing": [], "notReady": [],
    }
    assert message(group) == "all 3 members are ready"
    assert (condition(group, "MembersResolved") or {})["status"] == "True"
    row = cluster.kubectl("get", "contactgroups", "oncall", "-n", namespace,
                          "--no-headers").stdout.split()
    assert row[:3] == ["oncall", "3/3", "True"]

    # An older contact cannot take bob's email: no edit elsewhere un-readies a member.
    status, _ = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "a-elder", {"email": bob_email}))
    assert status == 409
    group_is(cluster, namespace, "oncall", "True", "Accepted")

    # The bot's Secret goes away, then comes back.
    cluster.core.delete_namespaced_secret("pager", namespace)
    group = group_is(cluster, namespace, "oncall", "False", "MembersNotReady")
    assert message(group) == "members not ready: dingtalkbot/pager"
    put_secret(cluster, namespace, "pager", {"url": DINGTALK_URL + token})
    group_is(cluster, namespace, "oncall", "True", "Accepted")

    # A member is deleted.
    cluster.delete("Contact", namespace, "alice")
    group = group_is(cluster, namespace, "oncall", "False", "MembersMissing")
    assert message(group) == missing + "contact/alice"
    assert group["status"]["members"]["summary"] == "2/3"


def test_an_empty_group_has_no_members_until_it_is_edited(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.create("ContactGroup", namespace, "nobody", {"displayName": "Nobody", "contacts": []})
    group = group_is(cluster, namespace, "nobody", "False", "NoMembers")
    assert message(group) == "the group lists no contacts and no DingTalk bots"
    assert group["status"]["members"]["summary"] == "0/0"
    stalled = condition(group, "Stalled")
    assert stalled is not None and (stalled["status"], stalled["reason"]) == ("True", "NoMembers")

    cluster.patch_spec("ContactGroup", namespace, "nobody", {"contacts": ["carol"]})
    group = group_is(cluster, namespace, "nobody", "False", "MembersMissing")
    assert condition(group, "Stalled") is None
    assert group["status"]["observedGeneration"] == 2


def test_members_are_looked_up_in_the_groups_own_namespace(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    elsewhere = f"elsewhere-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": elsewhere}})
    try:
        cluster.create("Contact", elsewhere, "alice", {"email": unique_email("alice")})
        wait_for_condition(cluster, "Contact", elsewhere, "alice", "Ready", "True")
        cluster.create("ContactGroup", namespace, "team", {"contacts": ["alice"]})
        group = group_is(cluster, namespace, "team", "False", "MembersMissing")
        assert message(group) == f"members not found in namespace {namespace}: contact/alice"
    finally:
        cluster.delete("Contact", elsewhere, "alice")


def test_a_member_listed_twice_is_refused_by_the_schema(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest("ContactGroup",
        namespace, "twice", {"contacts": ["alice", "bob", "alice"]}))
    assert result.returncode != 0
    assert "spec.contacts[2]" in result.stderr and 'Duplicate value: "alice"' in result.stderr
    assert cluster.get("ContactGroup", namespace, "twice") is None
