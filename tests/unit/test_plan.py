"""The whole-cluster decision: what gets written, and that agreement writes nothing."""

from __future__ import annotations

import base64
from typing import Any

from alert_contacts.domain.plan import plan_status
from alert_contacts.domain.records import ObjectRecord, record_of, secret_data
from alert_contacts.domain.types import ObjectRef
from alert_contacts.settings import Settings

SETTINGS = Settings()
NOW = "2026-01-01T00:00:00Z"
TOKEN = "a" * 40


def _record(kind: str, name: str, spec: dict[str, Any], created: str,
            status: dict[str, Any] | None = None, namespace: str = "team-a") -> ObjectRecord:
    return record_of(kind, {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "creationTimestamp": created, "generation": 1},
        "spec": spec, "status": status or {},
    })


def _apply(records: list[ObjectRecord], secrets: dict[Any, Any] | None = None) -> tuple[
    list[ObjectRecord], int
]:
    """One pass, then records as the watch would show them after the writes."""
    contacts = [r for r in records if r.ref.kind == "Contact"]
    bots = [r for r in records if r.ref.kind == "DingTalkBot"]
    groups = [r for r in records if r.ref.kind == "ContactGroup"]
    plan = plan_status(contacts, bots, groups, secrets or {}, SETTINGS, NOW)
    patches = {w.ref: w.patch["status"] for w in plan.writes}
    updated = []
    for r in records:
        status = dict(r.status)
        for key, value in patches.get(r.ref, {}).items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        updated.append(ObjectRecord(r.ref, r.uid, r.created, r.generation, r.spec, status))
    return updated, len(plan.writes)


def _ready(records: list[ObjectRecord], name: str) -> tuple[str, str]:
    record = next(r for r in records if r.ref.name == name)
    ready = next(c for c in record.status["conditions"] if c["type"] == "Ready")
    return ready["status"], ready["reason"]


def test_second_pass_over_the_written_status_writes_nothing() -> None:
    records = [
        _record("Contact", "alice", {"email": "alice@example.com"}, "2026-01-01T00:00:01Z"),
        _record("Contact", "alice2", {"email": "ALICE@example.com"}, "2026-01-01T00:00:02Z"),
        _record("Contact", "broken", {"email": "not-an-email"}, "2026-01-01T00:00:03Z"),
        _record("DingTalkBot", "bot", {"webhook": {"secretRef": {"name": "s", "key": "url"}}},
                "2026-01-01T00:00:04Z"),
        _record("ContactGroup", "sre", {"contacts": ["alice", "ghost"]}, "2026-01-01T00:00:05Z"),
    ]
    after, writes = _apply(records)
    assert writes == 5
    _, writes = _apply(after)
    assert writes == 0
    assert _ready(after, "alice") == ("True", "Accepted")
    assert _ready(after, "alice2") == ("False", "DuplicateEmail")
    assert _ready(after, "broken") == ("False", "InvalidSpec")
    assert _ready(after, "bot") == ("False", "SecretNotFound")
    assert _ready(after, "sre") == ("False", "MembersMissing")


def test_deleting_the_owner_promotes_the_next_claimant_and_ready_groups_follow() -> None:
    records = [
        _record("Contact", "alice", {"email": "alice@example.com"}, "2026-01-01T00:00:01Z"),
        _record("Contact", "alice2", {"email": "alice@example.com"}, "2026-01-01T00:00:02Z"),
        _record("ContactGroup", "sre", {"contacts": ["alice2"]}, "2026-01-01T00:00:05Z"),
    ]
    after, _ = _apply(records)
    assert _ready(after, "sre") == ("False", "MembersNotReady")
    remaining, writes = _apply([r for r in after if r.ref.name != "alice"])
    assert _ready(remaining, "alice2") == ("True", "Accepted")
    assert _ready(remaining, "sre") == ("True", "Accepted")
    assert writes == 2


def test_bot_reads_its_webhook_from_the_secret_in_its_own_namespace() -> None:
    spec = {"webhook": {"secretRef": {"name": "bot", "key": "url"}}}
    url = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    records = [_record("DingTalkBot", "bot", spec, "2026-01-01T00:00:01Z")]
    elsewhere = {("team-b", "bot"): {"url": url}}
    after, _ = _apply(records, elsewhere)
    assert _ready(after, "bot") == ("False", "SecretNotFound")
    after, _ = _apply(records, {("team-a", "bot"): {"url": url}})
    assert _ready(after, "bot") == ("True", "Accepted")


def test_transition_events_only_when_ready_changes() -> None:
    records = [_record("Contact", "alice", {"email": "alice@example.com"}, "2026-01-01T00:00:01Z")]
    contacts = records
    first = plan_status(contacts, [], [], {}, SETTINGS, NOW)
    assert first.writes[0].event == ("Normal", "Accepted", "valid, unique and within the quota")
    after, _ = _apply(records)
    edited = [ObjectRecord(r.ref, r.uid, r.created, 2, r.spec, r.status) for r in after]
    second = plan_status(edited, [], [], {}, SETTINGS, NOW)
    assert len(second.writes) == 1  # observedGeneration moved
    assert second.writes[0].event is None  # still Ready/Accepted: no Event


def test_quota_counts_contacts_and_bots_together() -> None:
    settings = Settings(quota=1)
    url = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    contacts = [_record("Contact", "alice", {"email": "alice@example.com"},
                        "2026-01-01T00:00:01Z")]
    bots = [_record("DingTalkBot", "bot", {"webhook": {"url": url}}, "2026-01-01T00:00:02Z")]
    plan = plan_status(contacts, bots, [], {}, settings, NOW)
    assert plan.ready == {ObjectRef("Contact", "team-a", "alice"): True,
                          ObjectRef("DingTalkBot", "team-a", "bot"): False}
    assert plan.in_quota == 1
    assert plan.reasons[("DingTalkBot", "QuotaExceeded")] == 1


def test_malformed_bodies_become_records_without_raising() -> None:
    record = record_of("Contact", {"metadata": {"name": "x"}, "spec": "not a mapping"})
    assert record.spec == {} and record.generation == 0 and record.ref.namespace == ""
    plan = plan_status([record], [], [], {}, SETTINGS, NOW)
    assert plan.ready == {record.ref: False}


def test_secret_data_keeps_only_values_a_bot_can_use() -> None:
    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    data = secret_data({"data": {
        "url": b64(b"https://x"), "sign": b64(b"SEC123"), "password": b64(b"hunter2"),
        "blob": b64(b"\xff\xfe"), "big": b64(b"https://" + b"x" * 10000), "bad": "%%%",
    }})
    assert data == {"url": "https://x", "sign": "SEC123", "password": "", "blob": "",
                    "big": "", "bad": ""}


def test_a_bot_pointing_at_a_password_is_told_it_is_not_a_url() -> None:
    spec = {"webhook": {"secretRef": {"name": "db", "key": "password"}}}
    records = [_record("DingTalkBot", "bot", spec, "2026-01-01T00:00:01Z")]
    after, _ = _apply(records, {("team-a", "db"): {"password": ""}})
    assert _ready(after, "bot") == ("False", "InvalidSpec")
    message = next(c for c in after[0].status["conditions"] if c["type"] == "Ready")["message"]
    assert "Secret 'db' key 'password'" in message and "there is no URL" in message


def test_events_redact_personal_data_that_status_keeps() -> None:
    records = [
        _record("Contact", "alice", {"email": "alice@example.com"}, "2026-01-01T00:00:01Z"),
        _record("Contact", "alice2", {"email": "alice@example.com",
                                      "mobile": "+86 138 0013 8000"}, "2026-01-01T00:00:02Z"),
    ]
    plan = plan_status(records, [], [], {}, SETTINGS, NOW)
    loser = next(w for w in plan.writes if w.ref.name == "alice2")
    ready = next(c for c in loser.patch["status"]["conditions"] if c["type"] == "Ready")
    assert "alice@example.com" in ready["message"]
    assert loser.event is not None and loser.event[1] == "DuplicateEmail"
    assert "alice@example.com" not in loser.event[2] and "a***@example.com" in loser.event[2]


def test_events_redact_mobile_numbers_in_duplicates_and_refusals() -> None:
    records = [
        _record("Contact", "a", {"mobile": "13800138000"}, "2026-01-01T00:00:01Z"),
        _record("Contact", "b", {"mobile": "+86 138-0013-8000"}, "2026-01-01T00:00:02Z"),
        _record("Contact", "c", {"mobile": "010 6552 9988"}, "2026-01-01T00:00:03Z"),
    ]
    plan = plan_status(records, [], [], {}, SETTINGS, NOW)
    events = {w.ref.name: w.event for w in plan.writes}
    assert events["b"] is not None and events["c"] is not None
    assert events["b"][1] == "DuplicateMobile" and "+86*******8000" in events["b"][2]
    assert "13800138000" not in events["b"][2]
    assert events["c"][1] == "InvalidSpec" and "******9988" in events["c"][2]
    assert "6552" not in events["c"][2]


def test_a_secret_url_is_judged_like_an_inline_one_whatever_the_scheme_case() -> None:
    url = f"HTTPS://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    data = secret_data({"data": {"url": base64.b64encode(url.encode()).decode()}})
    assert data == {"url": url}
    spec = {"webhook": {"secretRef": {"name": "bot", "key": "url"}}}
    records = [_record("DingTalkBot", "bot", spec, "2026-01-01T00:00:01Z")]
    after, _ = _apply(records, {("team-a", "bot"): data})
    assert _ready(after, "bot") == ("True", "Accepted")


def test_status_display_name_falls_back_to_the_object_name() -> None:
    records = [
        _record("Contact", "alice", {"email": "alice@example.com", "displayName": "Alice"},
                "2026-01-01T00:00:01Z"),
        _record("Contact", "bob", {"email": "bob@example.com", "displayName": " "},
                "2026-01-01T00:00:02Z"),
        _record("ContactGroup", "sre", {"contacts": ["alice"]}, "2026-01-01T00:00:03Z"),
        _record("DingTalkBot", "robot", {"displayName": "",
                                         "webhook": {"secretRef": {"name": "s", "key": "url"}}},
                "2026-01-01T00:00:04Z"),
    ]
    updated, _ = _apply(records)
    shown = {r.ref.name: r.status["displayName"] for r in updated}
    assert shown == {"alice": "Alice", "bob": "bob", "sre": "sre", "robot": "robot"}


def test_a_non_opaque_secret_is_named_by_its_type_in_status() -> None:
    bot = _record("DingTalkBot", "robot", {"webhook": {"secretRef": {"name": "s", "key": "url"}}},
                  "2026-01-01T00:00:01Z")
    secrets = {("team-a", "s"): secret_data({"type": "kubernetes.io/tls", "data": {}})}
    (updated,), _ = _apply([bot], secrets)
    ready = next(c for c in updated.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "SecretNotFound"
    assert "has type 'kubernetes.io/tls'" in ready["message"]
