"""System notices: which conditions deserve one, at most once per condition per hour."""

from __future__ import annotations

from alert_contacts.domain.notices import (
    NoticeThrottle,
    current_notices,
    failed_bots,
    recipients,
)
from alert_contacts.domain.records import record_of
from alert_contacts.domain.types import ObjectRef


def record(kind: str, name: str, spec: dict, conditions: list, **status: object):  # type: ignore[no-untyped-def,type-arg]
    return record_of(kind, {"metadata": {"name": name, "namespace": "n"}, "spec": spec,
                            "status": {"conditions": conditions, **status}})


IN = [{"type": "WithinQuota", "status": "True"}, {"type": "Ready", "status": "True"}]


def test_quota_notice_from_ninety_percent() -> None:
    assert [n.key for n in current_notices(9, 10, [], [])] == ["quota"]
    assert current_notices(8, 10, [], []) == []
    assert current_notices(0, 0, [], []) == []


def test_held_objects_and_failed_bots_each_get_their_own_notice() -> None:
    bot = record("DingTalkBot", "b", {}, IN,
                 delivery={"result": "Failed", "reason": "TokenNotFound"})
    held, failed = [ObjectRef("Contact", "n", "late")], failed_bots([bot])
    keys = [n.key for n in current_notices(1, 100, held, failed)]
    assert keys == ["held:Contact/n/late", "bot-failed:n/b:TokenNotFound"]


def test_each_notice_at_most_once_an_hour() -> None:
    throttle = NoticeThrottle()
    notices = current_notices(10, 10, [], [])
    assert throttle.due(notices, 1000.0) == notices
    assert throttle.due(notices, 1000.0 + 3599) == []
    assert throttle.due(notices, 1000.0 + 3600) == notices


def test_recipients_are_system_contacts_and_the_bots_of_their_groups() -> None:
    alice = record("Contact", "alice", {"systemNotifications": True}, IN)
    bob = record("Contact", "bob", {}, IN)
    groups = [record("ContactGroup", "sre", {"contacts": ["alice"], "dingTalkBots": ["oncall"]},
                     []),
              record("ContactGroup", "dev", {"contacts": ["bob"], "dingTalkBots": ["devbot"]},
                     [])]
    people, bots = recipients([alice, bob], groups)
    assert people == [alice.ref]
    assert bots == [ObjectRef("DingTalkBot", "n", "oncall")]


def test_the_throttle_forgets_notices_sent_longer_ago_than_its_interval() -> None:
    from alert_contacts.domain.notices import Notice, NoticeThrottle
    throttle = NoticeThrottle(interval=60.0)
    first, second = Notice("quota", "s", "t"), Notice("bot:team/a", "s", "t")
    assert throttle.due([first], 0.0) == [first]
    assert throttle.due([first], 30.0) == []
    assert throttle.due([second], 100.0) == [second]
    assert set(throttle.sent) == {"bot:team/a"}  # the quota notice's hour is over
