"""Settings at work in the running operator and its webhook, not only parsed:
a small quota refused at admission, another default region, other DingTalk
hosts; and the warnings kubectl prints when an edit gives up a quota slot or
a key that another object waits for.

The settings tests run one operator with all three (the session operator steps
aside meanwhile: two would race on status writes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    put_secret,
    refusal,
    unique_email,
    unique_token,
    wait_for_condition,
)
from tests.e2e.test_quota import in_quota_elsewhere, sync_point

HOST = "robot.example.test"  # never contacted: validation only reads the URL
ROOM = 3  # objects this module may add once its sync point is in


def url(host: str) -> str:
    return f"https://{host}/robot/send?access_token={unique_token()}"


@pytest.fixture
def configured(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> Iterator[tuple[Operator, int]]:
    """An operator with quota = what is in use + ROOM, region US and HOST, serving its webhook."""
    sync_point(cluster, namespace)
    # The sync point's bot has a default-host URL, invalid under HOST: out of the count.
    cluster.delete("DingTalkBot", namespace, "sync-bot")
    quota = in_quota_elsewhere(cluster, namespace) + 1 + ROOM
    operator.stop()
    configured = Operator(cluster, tmp_path / "operator.log", args=[
        f"--quota={quota}", "--default-region=US", f"--dingtalk-hosts={HOST}"])
    try:
        configured.start()
        yield configured, quota
    finally:
        configured.stop()
        operator.start()


def test_a_configured_quota_is_enforced_at_admission(
    cluster: Cluster, configured: tuple[Operator, int], namespace: str
) -> None:
    _, quota = configured
    cluster.create("DingTalkBot", namespace, "bot", {"webhook": {"url": url(HOST)}})
    for i in range(ROOM - 1):
        cluster.create("Contact", namespace, f"c{i}", {"email": unique_email(f"c{i}")})
    for i in range(ROOM - 1):
        wait_for_condition(cluster, "Contact", namespace, f"c{i}", "Ready", "True")
    wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "True")
    status, message = refusal(lambda: cluster.create(
        "Contact", namespace, "over", {"email": unique_email("over")}))
    assert status == 403, message
    assert f"quota of {quota} contacts and DingTalk bots is full ({quota} in use)" in message
    assert cluster.get("Contact", namespace, "over") is None


def test_the_default_region_applies_to_admission_and_reconcile(
    cluster: Cluster, configured: tuple[Operator, int], namespace: str
) -> None:
    # A US number without a country code: valid in region US, normalised to +1.
    cluster.create("Contact", namespace, "us", {"mobile": "(650) 253-0000"})
    us = wait_for_condition(cluster, "Contact", namespace, "us", "Ready", "True")
    assert us["status"]["normalized"]["mobile"] == "+16502530000"
    # A Chinese mobile without +86, valid under the default CN, is not a US number.
    status, message = refusal(lambda: cluster.create(
        "Contact", namespace, "cn", {"mobile": "13800138000"}))
    assert status == 422, message
    assert "spec.mobile '13800138000': not a valid phone number for +1 (US)" in message


def test_dingtalk_hosts_apply_to_admission_and_reconcile(
    cluster: Cluster, configured: tuple[Operator, int], namespace: str
) -> None:
    cluster.create("DingTalkBot", namespace, "allowed", {"webhook": {"url": url(HOST)}})
    wait_for_condition(cluster, "DingTalkBot", namespace, "allowed", "Ready", "True")
    # The default host is not in the configured list: refused at admission ...
    status, message = refusal(lambda: cluster.create(
        "DingTalkBot", namespace, "default-host",
        {"webhook": {"url": url("oapi.dingtalk.com")}}))
    assert status == 422, message
    assert "'oapi.dingtalk.com' is not an allowed" in message
    # ... and held invalid by the reconciler when it comes from a Secret later.
    cluster.create("DingTalkBot", namespace, "held",
                   {"webhook": {"secretRef": {"name": "hook", "key": "url"}}})
    put_secret(cluster, namespace, "hook", {"url": url("oapi.dingtalk.com")})
    held = wait_for_condition(cluster, "DingTalkBot", namespace, "held", "Ready", "False",
                              reason="InvalidSpec")
    ready = next(c for c in held["status"]["conditions"] if c["type"] == "Ready")
    assert "'oapi.dingtalk.com' is not an allowed" in ready["message"]
    put_secret(cluster, namespace, "hook", {"url": url(HOST)})
    wait_for_condition(cluster, "DingTalkBot", namespace, "held", "Ready", "True")


def test_kubectl_prints_who_gets_the_quota_slot_an_edit_gives_up(
    cluster: Cluster, configured: tuple[Operator, int], namespace: str
) -> None:
    # The quota full: a bot and contacts.
    cluster.create("DingTalkBot", namespace, "a-bot", {"webhook": {"url": url(HOST)}})
    for i in range(ROOM - 1):
        cluster.create("Contact", namespace, f"c{i}", {"email": unique_email(f"c{i}")})
    wait_for_condition(cluster, "DingTalkBot", namespace, "a-bot", "Ready", "True")
    for i in range(ROOM - 1):
        wait_for_condition(cluster, "Contact", namespace, f"c{i}", "Ready", "True")
    # A bot waiting for its Secret is admitted; once the Secret is there it waits for room.
    cluster.create("DingTalkBot", namespace, "z-waiting",
                   {"webhook": {"secretRef": {"name": "hook", "key": "url"}}})
    put_secret(cluster, namespace, "hook", {"url": url(HOST)})
    wait_for_condition(cluster, "DingTalkBot", namespace, "z-waiting", "Ready", "False",
                       reason="QuotaExceeded")

    # Pointed at a Secret that does not exist, the first bot gives up its slot.
    result = cluster.kubectl(
        "patch", "dingtalkbot/a-bot", "-n", namespace, "--type=merge", "-p", json.dumps(
            {"spec": {"webhook": {"url": None, "secretRef": {"name": "absent", "key": "url"}}}}))
    assert (f"Warning: this object gives up its quota slot: DingTalkBot {namespace}/z-waiting, "
            "next in line, becomes WithinQuota") in result.stderr, result.stderr
    wait_for_condition(cluster, "DingTalkBot", namespace, "z-waiting", "Ready", "True")


def test_kubectl_prints_who_inherits_a_key_an_edit_gives_up(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    taken = DINGTALK_URL + unique_token()
    cluster.create("DingTalkBot", namespace, "holder", {"webhook": {"url": taken}})
    wait_for_condition(cluster, "DingTalkBot", namespace, "holder", "Ready", "True")
    # Admission cannot see a Secret that does not exist yet: a second claimant gets in.
    cluster.create("DingTalkBot", namespace, "second",
                   {"webhook": {"secretRef": {"name": "hook", "key": "url"}}})
    put_secret(cluster, namespace, "hook", {"url": taken})
    wait_for_condition(cluster, "DingTalkBot", namespace, "second", "Ready", "False",
                       reason="DuplicateWebhook")

    result = cluster.kubectl(
        "patch", "dingtalkbot/holder", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"webhook": {"url": DINGTALK_URL + unique_token()}}}))
    assert (f"is no longer claimed by this object: DingTalkBot {namespace}/second, which also "
            "claims it, becomes its owner") in result.stderr, result.stderr
    wait_for_condition(cluster, "DingTalkBot", namespace, "second", "Ready", "True")
