"""Delivery decisions: a group's targets, retry timing, the answer to Alertmanager."""

from __future__ import annotations

import base64
from typing import Any

from alert_contacts.domain.delivery import (
    RETRY_BUDGET_SECONDS,
    answer,
    bot_target,
    resolve_targets,
    retry_delay,
)
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.records import record_of, secret_data
from alert_contacts.domain.types import ObjectRef

URL = "https://oapi.dingtalk.com/robot/send?access_token=" + "a" * 64
SECRET = "SEC" + "b" * 40
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Accepted"}]}
NOT_READY = {"conditions": [{"type": "Ready", "status": "False", "reason": "QuotaExceeded"}]}


def body(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None,
         namespace: str = "team") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "uid": name},
            "spec": spec, "status": status or {}}


def records(kind: str, *bodies: dict[str, Any]) -> dict[ObjectRef, Any]:
    found = (record_of(kind, b) for b in bodies)
    return {r.ref: r for r in found}


def transient(reason: str = "ServerError") -> SendOutcome:
    return SendOutcome("transient", reason, 500)


def test_targets_are_ready_members_with_resolved_webhooks_and_normalised_addresses() -> None:
    secret = {"data": {"url": base64.b64encode(URL.encode()).decode(),
                       "sign": base64.b64encode(SECRET.encode()).decode()}}
    secrets = {("team", "bot-secret"): secret_data(secret)}
    bots = records(
        "DingTalkBot",
        body("DingTalkBot", "signed", {"webhook": {"secretRef": {"name": "bot-secret",
                                                                 "key": "url"}},
                                       "signingSecretRef": {"name": "bot-secret",
                                                            "key": "sign"}}, READY),
        body("DingTalkBot", "held", {"webhook": {"url": URL.replace("a", "c")}}, NOT_READY),
    )
    contacts = records(
        "Contact",
        body("Contact", "alice", {"email": "Alice@Example.com", "mobile": "138 0013 8000"},
             {**READY, "normalized": {"email": "alice@example.com",
                                      "mobile": "+8613800138000"}}),
        body("Contact", "bob", {"email": "bob@example.com"},
             {**NOT_READY, "normalized": {"email": "bob@example.com"}}),
    )
    group = record_of("ContactGroup", body(
        "ContactGroup", "oncall", {"contacts": ["alice", "bob", "ghost"],
                                   "dingTalkBots": ["signed", "held", "gone"]}))
    targets = resolve_targets(group, contacts, bots, secrets)
    assert [b.ref.name for b in targets.bots] == ["signed"]
    assert (targets.bots[0].url, targets.bots[0].secret) == (URL, SECRET)
    assert targets.emails == ("alice@example.com",)  # bob is not Ready
    assert targets.mobiles == ("+8613800138000",)
    assert URL not in repr(targets) and SECRET not in repr(targets)


def test_a_signed_bot_whose_secret_is_gone_is_not_a_target() -> None:
    bot = record_of("DingTalkBot", body(
        "DingTalkBot", "signed", {"webhook": {"url": URL},
                                  "signingSecretRef": {"name": "gone", "key": "sign"}}, READY))
    assert bot_target(bot, {}) is None
    unsigned = record_of("DingTalkBot", body("DingTalkBot", "plain", {"webhook": {"url": URL}},
                                             READY))
    found = bot_target(unsigned, {})
    assert found is not None and found.secret is None


def test_one_queue_per_webhook_whichever_object_names_it() -> None:
    one = bot_target(record_of("DingTalkBot", body("DingTalkBot", "a", {"webhook": {"url": URL}},
                                                   READY)), {})
    other = bot_target(record_of("DingTalkBot", body("DingTalkBot", "b", {"webhook": {"url": URL}},
                                                     READY, namespace="x")), {})
    assert one is not None and other is not None and one.robot == other.robot


def test_retries_back_off_exponentially_within_the_budget() -> None:
    delays = [retry_delay(transient(), attempt, 0.0) for attempt in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert retry_delay(transient(), 3, RETRY_BUDGET_SECONDS - 1) is None  # would overrun
    assert RETRY_BUDGET_SECONDS <= 60  # well under Alertmanager's 5-minute group_interval


def test_only_transient_failures_are_retried_and_rate_limits_wait_longer() -> None:
    assert retry_delay(SendOutcome("permanent", "KeywordMissing", 310000), 1, 0.0) is None
    assert retry_delay(SendOutcome("ok", "Delivered"), 1, 0.0) is None
    assert retry_delay(transient("RateLimited"), 1, 0.0) == 10.0


def test_answer_is_2xx_once_every_target_is_done_and_5xx_while_one_may_still_succeed() -> None:
    assert answer({"dingtalkbot/a": "delivered", "email": "permanent"}).status == 200
    assert answer({"dingtalkbot/a": "duplicate", "email": "skipped"}).status == 200
    assert answer({}).status == 200
    retry = answer({"dingtalkbot/a": "delivered", "dingtalkbot/b": "transient"})
    assert retry.status == 503 and "dingtalkbot/b" in retry.summary
