"""The cluster-wide quota: Contacts and DingTalkBots together, 100 by default,
refused at admission when visibly full, held QuotaExceeded by the reconciler
otherwise, and promoted, in the order objects became valid and unique, as soon as
room frees up. A slot once held is never taken by an edit of another object.

The quota is cluster-wide, so these tests count what else exists (normally
nothing: every test cleans up) instead of assuming an empty cluster.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    condition,
    create_many,
    order_key,
    put_secret,
    ready_reason,
    refusal,
    unique_email,
    unique_token,
    wait_for_condition,
    wait_until,
)

DEFAULT_QUOTA = 100


def claimants(cluster: Cluster, namespace: str | None = None) -> list[dict[str, Any]]:
    return cluster.list("Contact", namespace) + cluster.list("DingTalkBot", namespace)


def in_quota_elsewhere(cluster: Cluster, namespace: str) -> int:
    """Objects of other tests' namespaces that hold a quota slot (normally none)."""
    return sum(
        1 for o in claimants(cluster)
        if o["metadata"]["namespace"] != namespace
        and (condition(o, "WithinQuota") or {}).get("status") == "True"
    )


def sync_point(cluster: Cluster, namespace: str) -> None:
    """A Contact and a DingTalkBot that become Ready: the operator has then seen
    every earlier change of both kinds (each kind is one watch stream, in order),
    including the previous tests' deletions."""
    cluster.create("Contact", namespace, "sync-contact", {"email": unique_email("sync")})
    cluster.create("DingTalkBot", namespace, "sync-bot",
                   {"webhook": {"url": DINGTALK_URL + unique_token()}})
    wait_for_condition(cluster, "Contact", namespace, "sync-contact", "Ready", "True")
    wait_for_condition(cluster, "DingTalkBot", namespace, "sync-bot", "Ready", "True")


def all_ready(cluster: Cluster, namespace: str, count: int) -> list[dict[str, Any]] | None:
    objects = claimants(cluster, namespace)
    if len(objects) == count and all(ready_reason(o) == ("True", "Accepted") for o in objects):
        return objects
    return None


def test_the_default_quota_holds_100_contacts_and_bots_together(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    sync_point(cluster, namespace)
    room = DEFAULT_QUOTA - in_quota_elsewhere(cluster, namespace) - 2
    batch = f"b-{uuid.uuid4().hex[:6]}"
    bots = [("DingTalkBot", namespace, f"bot{i:03d}",
             {"webhook": {"url": DINGTALK_URL + unique_token()}}, {}) for i in range(4)]
    contacts = [("Contact", namespace, f"c{i:03d}", {"email": unique_email(f"q{i}")},
                 {"batch": batch if i < 10 else "keep"}) for i in range(room - len(bots))]
    started = time.monotonic()
    results = create_many(cluster, bots + contacts)
    refused = [r for r in results if not isinstance(r, dict)]
    assert not refused, refused[:3]
    wait_until(f"{room + 2} contacts and bots to be Ready",
               lambda: all_ready(cluster, namespace, room + 2), timeout=60)
    print(f"\n{room} contacts and bots created and Ready in {time.monotonic() - started:.1f}s")

    # The 101st is refused at admission, whichever kind it is.
    full = f"quota of {DEFAULT_QUOTA} contacts and DingTalk bots is full ({DEFAULT_QUOTA} in use)"
    for kind, spec in (("Contact", {"email": unique_email("over")}),
                       ("DingTalkBot", {"webhook": {"url": DINGTALK_URL + unique_token()}})):
        status, message = refusal(
            lambda k=kind, s=spec: cluster.create(k, namespace, "over", s))
        assert status == 403, message
        assert full in message
        assert cluster.get(kind, namespace, "over") is None

    # A bot applied before its Secret claims nothing yet, so it is admitted; once
    # the Secret appears it is valid and unique, but there is no room: held.
    cluster.create("DingTalkBot", namespace, "held",
                   {"webhook": {"secretRef": {"name": "held-hook", "key": "url"}}})
    wait_for_condition(cluster, "DingTalkBot", namespace, "held", "Ready", "False",
                       reason="SecretNotFound")
    put_secret(cluster, namespace, "held-hook", {"url": DINGTALK_URL + unique_token()})
    held = wait_for_condition(cluster, "DingTalkBot", namespace, "held", "Ready", "False",
                              reason="QuotaExceeded")
    assert (condition(held, "Ready") or {})["message"].startswith(full)
    assert [(condition(held, t) or {}).get("status")
            for t in ("Valid", "Unique", "WithinQuota", "Stalled")] == [
        "True", "True", "False", "True"]

    # A batch delete by label frees ten slots: the held bot is promoted (a
    # correctness deadline for a loaded machine; `make bench` measures the latency).
    result = cluster.kubectl("delete", "contacts", "-l", f"batch={batch}", "-n", namespace)
    assert result.stdout.count(" deleted") == 10
    wait_for_condition(cluster, "DingTalkBot", namespace, "held", "Ready", "True",
                       reason="Accepted", timeout=60)
    # ...and the nine slots left are open to new contacts again.
    cluster.create("Contact", namespace, "after", {"email": unique_email("after")})
    wait_for_condition(cluster, "Contact", namespace, "after", "Ready", "True")


def test_the_quota_is_configurable_and_held_objects_follow_creation_order(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    sync_point(cluster, namespace)
    quota = in_quota_elsewhere(cluster, namespace) + 2 + 2  # room for two more
    # Without admission every create lands, and the reconciler decides who fits.
    operator.stop()
    small = Operator(cluster, tmp_path / "operator.log", args=["--webhook=none"],
                     env={"ALERT_CONTACTS_QUOTA": str(quota)})
    try:
        small.start()
        results = create_many(cluster, [
            ("Contact", namespace, f"c{i}", {"email": unique_email(f"c{i}")}, {})
            for i in range(5)
        ])
        assert all(isinstance(r, dict) for r in results), results

        def decided() -> list[tuple[str, tuple[str, str] | None]] | None:
            mine = sorted((o for o in cluster.list("Contact", namespace)
                           if o["metadata"]["name"].startswith("c")), key=order_key)
            outcome = [(o["metadata"]["name"], ready_reason(o)) for o in mine]
            return outcome if all(r is not None for _, r in outcome) else None

        outcome = wait_until("all five contacts to be decided", decided)
        assert [r for _, r in outcome] == [("True", "Accepted")] * 2 + [
            ("False", "QuotaExceeded")] * 3, outcome
        third = cluster.get("Contact", namespace, outcome[2][0])
        assert (condition(third, "Ready") or {})["message"] == (
            f"quota of {quota} contacts and DingTalk bots is full ({quota} in use); this object"
            " gets the next free slot after those that became valid and unique before it")

        # Deleting one within quota promotes exactly the earliest held one.
        cluster.delete("Contact", namespace, outcome[0][0])
        wait_for_condition(cluster, "Contact", namespace, outcome[2][0], "Ready", "True")
        for name, _ in outcome[3:]:
            wait_for_condition(cluster, "Contact", namespace, name, "Ready", "False",
                               reason="QuotaExceeded")
    finally:
        small.stop()
        operator.start()

    # Back at the default quota, the held contacts fit.
    for name, _ in outcome[3:]:
        wait_for_condition(cluster, "Contact", namespace, name, "Ready", "True")


def test_with_the_quota_full_fixing_an_old_object_evicts_nobody(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    sync_point(cluster, namespace)
    quota = in_quota_elsewhere(cluster, namespace) + 2 + 1  # room for one more
    limits = {"ALERT_CONTACTS_QUOTA": str(quota)}
    operator.stop()
    # Without admission, as when objects predate the webhook or race past it.
    raw = Operator(cluster, tmp_path / "raw.log", args=["--webhook=none"], env=limits)
    checked = Operator(cluster, tmp_path / "checked.log", env=limits)
    try:
        raw.start()
        cluster.create("Contact", namespace, "old", {"email": "not-an-email"})
        cluster.create("Contact", namespace, "old2", {"email": "also-not-an-email"})
        cluster.create("DingTalkBot", namespace, "old-bot",
                       {"webhook": {"secretRef": {"name": "late-hook", "key": "url"}}})
        wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "False",
                           reason="InvalidSpec")
        wait_for_condition(cluster, "DingTalkBot", namespace, "old-bot", "Ready", "False",
                           reason="SecretNotFound")
        cluster.create("DingTalkBot", namespace, "working",
                       {"webhook": {"url": DINGTALK_URL + unique_token()}})
        wait_for_condition(cluster, "DingTalkBot", namespace, "working", "Ready", "True")

        # The old contact is fixed: it is valid and unique, but the slot is taken.
        cluster.patch_spec("Contact", namespace, "old", {"email": unique_email("fixed")})
        wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "False",
                           reason="QuotaExceeded")
        # The Secret the old bot waited for appears: it queues too.
        put_secret(cluster, namespace, "late-hook", {"url": DINGTALK_URL + unique_token()})
        wait_for_condition(cluster, "DingTalkBot", namespace, "old-bot", "Ready", "False",
                           reason="QuotaExceeded")
        working = cluster.get("DingTalkBot", namespace, "working")
        assert ready_reason(working) == ("True", "Accepted"), working
        assert "eligibleSince" in working["status"]
        raw.stop()

        # With admission on, the same fix is refused while the quota is full...
        checked.start()
        status, message = refusal(lambda: cluster.patch_spec(
            "Contact", namespace, "old2", {"email": unique_email("fixed2")}))
        assert status == 403, message
        assert f"quota of {quota} contacts and DingTalk bots is full" in message
        # ...while edits that need no new slot pass: the queued contact is renamed.
        cluster.patch_spec("Contact", namespace, "old", {"displayName": "Old, queued"})
        wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "False",
                           reason="QuotaExceeded")
        assert ready_reason(cluster.get("DingTalkBot", namespace, "working")) == (
            "True", "Accepted")
    finally:
        raw.stop()
        checked.stop()
        operator.start()

    # At the default quota there is room for everyone valid.
    wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "True")
    wait_for_condition(cluster, "DingTalkBot", namespace, "old-bot", "Ready", "True")
