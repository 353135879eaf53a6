"""Delivery feedback: status.delivery written on change only, Delivering derived from it,
and a reconciler status patch that keeps the delivery engine's keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_contacts.domain.conditions import status_patch
from alert_contacts.domain.feedback import (
    bot_delivery_patch,
    delivering_condition,
    group_delivery_patch,
    last_test,
    send_test_pending,
    with_delivering,
)
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.plan import plan_status
from alert_contacts.domain.records import record_of
from alert_contacts.settings import Settings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OK = SendOutcome("ok", "Delivered", 0, "ok")
KEYWORD = SendOutcome("permanent", "KeywordMissing", 310000, "keywords not in content")


def test_a_new_outcome_is_written_and_the_same_outcome_again_is_not() -> None:
    patch = bot_delivery_patch({}, KEYWORD, NOW)
    assert patch == {"status": {"delivery": {
        "time": "2026-11-26T12:00:00Z", "result": "Failed", "reason": "KeywordMissing",
        "code": 310000, "message": "keywords not in content"}}}
    status = patch["status"]
    assert bot_delivery_patch(status, KEYWORD, NOW + timedelta(minutes=1)) is None
    assert bot_delivery_patch(status, OK, NOW + timedelta(minutes=1)) is not None


def test_the_same_outcome_refreshes_its_time_after_ten_minutes() -> None:
    status = bot_delivery_patch({}, OK, NOW)["status"]  # type: ignore[index]
    assert bot_delivery_patch(status, OK, NOW + timedelta(minutes=9)) is None
    assert bot_delivery_patch(status, OK, NOW + timedelta(minutes=10)) is not None


def test_delivering_is_false_with_the_failure_reason_then_true_after_a_success() -> None:
    failed = bot_delivery_patch({}, KEYWORD, NOW)["status"]  # type: ignore[index]
    condition = delivering_condition(failed, 3)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "KeywordMissing")
    assert "310000" in condition["message"] and condition["observedGeneration"] == 3
    fixed = bot_delivery_patch(failed, OK, NOW)["status"]  # type: ignore[index]
    assert delivering_condition(fixed, 3)["status"] == "True"  # type: ignore[index]
    assert delivering_condition({}, 3) is None  # never used: no condition


def test_group_delivery_is_per_channel() -> None:
    patch = group_delivery_patch({}, "email", OK, NOW, "to 2 recipient(s)")
    assert patch is not None and set(patch["status"]["delivery"]) == {"email"}
    assert group_delivery_patch(patch["status"], "email", OK, NOW, "to 2 recipient(s)") is None


def test_reconciler_patch_keeps_delivery_keys_and_adds_delivering() -> None:
    current = {"delivery": {"result": "Failed", "reason": "SignatureRejected", "code": 310000},
               "lastTest": {"request": "1"}, "conditions": []}
    desired = with_delivering({"observedGeneration": 1, "conditions": []}, current, 1)
    patch = status_patch(current, desired, now="2026-11-26T12:00:00Z")
    assert patch is not None
    assert "delivery" not in patch["status"] and "lastTest" not in patch["status"]
    [delivering] = patch["status"]["conditions"]
    assert (delivering["type"], delivering["reason"]) == ("Delivering", "SignatureRejected")


def test_plan_builds_delivering_for_bots_from_their_status() -> None:
    bot = record_of("DingTalkBot", {
        "metadata": {"name": "b", "namespace": "n", "uid": "u", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"webhook": {"url": "https://oapi.dingtalk.com/robot/send?access_token="
                             + "a" * 64}},
        "status": {"delivery": {"result": "Delivered", "reason": "Delivered"}},
    })
    plan = plan_status([], [bot], [], {}, Settings(), "2026-11-26T12:00:00Z")
    [write] = plan.writes
    types = {c["type"]: c["status"] for c in write.patch["status"]["conditions"]}
    assert types["Delivering"] == "True" and types["Ready"] == "True"


def test_a_test_request_is_answered_once() -> None:
    assert send_test_pending("42", {})
    status = {"lastTest": last_test("42", NOW, True, "delivered")}
    assert not send_test_pending("42", status)
    assert send_test_pending("43", status)
    assert not send_test_pending(None, {}) and not send_test_pending("", {})
    assert status["lastTest"]["result"] == "Succeeded"
