"""Restarting the operator over unchanged objects writes nothing.

DESIGN.md: "A reconcile that changes nothing writes nothing (restarting the
operator over 1,000 unchanged objects produces zero writes)". Every object's
metadata.resourceVersion must be the same after the restarted operator has
made a full pass, and no Event may be posted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    create_many,
    put_secret,
    ready_reason,
    unique_email,
    unique_mobile,
    unique_token,
    wait_for_condition,
    wait_until,
    without_admission,
)

KINDS = ("Contact", "DingTalkBot", "ContactGroup")


def everything(cluster: Cluster, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(kind, o["metadata"]["name"]): o
            for kind in KINDS for o in cluster.list(kind, namespace)}


def full_pass(cluster: Cluster, namespace: str, tag: str) -> None:
    """Wait until every reconcile pass that began before now has finished writing.

    Passes run one at a time and each finishes its writes before the next
    starts. Contact ``tag-1`` turning Ready proves a pass that saw it; ``tag-2``,
    created only then, turning Ready proves a later pass, so the first one
    (and all before it) had finished.
    """
    for step in ("1", "2"):
        cluster.create("Contact", namespace, f"{tag}-{step}", {"email": unique_email(tag)})
        wait_for_condition(cluster, "Contact", namespace, f"{tag}-{step}", "Ready", "True")


def test_a_restart_over_unchanged_objects_writes_nothing(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    # A duplicate, created past admission (admission refuses every way to make one).
    taken = unique_email("taken")
    cluster.create("Contact", namespace, "a-elder", {"email": taken})
    wait_for_condition(cluster, "Contact", namespace, "a-elder", "Ready", "True")
    with without_admission(operator, tmp_path / "bare.log"):
        cluster.create("Contact", namespace, "young", {"email": taken})
        wait_for_condition(cluster, "Contact", namespace, "young", "Ready", "False",
                           reason="DuplicateEmail")

    put_secret(cluster, namespace, "hook", {"url": DINGTALK_URL + unique_token()})
    objects: list[tuple[str, str, str, dict[str, Any], dict[str, str]]] = [
        ("Contact", namespace, f"c{i:03d}",
         {"email": unique_email(f"c{i}"), **({"mobile": unique_mobile()[0]} if i % 2 else {})},
         {"restart": "yes"})
        for i in range(80)
    ]
    objects += [("DingTalkBot", namespace, f"bot{i}",
                 {"webhook": {"url": DINGTALK_URL + unique_token()}}, {}) for i in range(3)]
    objects += [("DingTalkBot", namespace, "from-secret",
                 {"webhook": {"secretRef": {"name": "hook", "key": "url"}}}, {})]
    objects += [("DingTalkBot", namespace, f"waiting{i}",
                 {"webhook": {"secretRef": {"name": f"absent{i}", "key": "url"}}}, {})
                for i in range(3)]
    objects += [("ContactGroup", namespace, f"g{i}",
                 {"contacts": [f"c{i:03d}", f"c{i + 1:03d}"], "dingTalkBots": ["bot0"]}, {})
                for i in range(6)]
    objects += [
        ("ContactGroup", namespace, "ghosts", {"contacts": ["c000", "ghost"]}, {}),
        ("ContactGroup", namespace, "with-young", {"contacts": ["young", "c001"]}, {}),
        ("ContactGroup", namespace, "with-waiting", {"dingTalkBots": ["waiting0"]}, {}),
        ("ContactGroup", namespace, "empty", {}, {}),
    ]
    assert all(isinstance(r, dict) for r in create_many(cluster, objects))

    expected = {(k, n): ("True", "Accepted") for k, _, n, _, _ in objects}
    expected |= {
        ("Contact", "a-elder"): ("True", "Accepted"),
        ("Contact", "young"): ("False", "DuplicateEmail"),
        ("ContactGroup", "ghosts"): ("False", "MembersMissing"),
        ("ContactGroup", "with-young"): ("False", "MembersNotReady"),
        ("ContactGroup", "with-waiting"): ("False", "MembersNotReady"),
        ("ContactGroup", "empty"): ("False", "NoMembers"),
    } | {("DingTalkBot", f"waiting{i}"): ("False", "SecretNotFound") for i in range(3)}

    def settled() -> dict[tuple[str, str], dict[str, Any]] | None:
        now = everything(cluster, namespace)
        got = {key: ready_reason(obj) for key, obj in now.items()}
        return now if got == expected else None

    wait_until(f"{len(expected)} objects to settle", settled, timeout=60)
    full_pass(cluster, namespace, "before")
    before = {key: obj for key, obj in everything(cluster, namespace).items() if key in expected}
    names = {name for _, name in before}

    def events_of_those() -> list[str]:
        # Passes post their Events before they end: full_pass covers them too.
        return sorted(e.metadata.name for e in cluster.core.list_namespaced_event(namespace).items
                      if e.involved_object.name in names)

    events_before = events_of_those()
    assert events_before  # transitions to Ready and not Ready were announced

    started = time.monotonic()
    operator.stop()
    operator.start()
    # Contacts made after the restart turn Ready: the restarted operator has
    # made full passes over everything its indexes hold, ours included.
    full_pass(cluster, namespace, "after")
    print(f"\nrestart over {len(before)} objects and two full passes:"
          f" {time.monotonic() - started:.1f}s")

    after = everything(cluster, namespace)
    changed = sorted(
        f"{kind}/{name}" for (kind, name), obj in before.items()
        if after[(kind, name)]["metadata"]["resourceVersion"]
        != obj["metadata"]["resourceVersion"]
    )
    assert not changed, f"the restart wrote {len(changed)} objects: {changed[:10]}"
    assert events_of_those() == events_before, "the restart posted Events"
