"""Delivery keys and the seen-window: a retried notification does not reach a target twice."""

from __future__ import annotations

import copy

import pytest

from alert_contacts.domain.dedup import (
    SeenWindow,
    alert_key,
    decode_seen,
    delivery_keys,
    encode_seen,
)

from .delivery_data import FIRING_API, notification


def test_one_key_per_alert_and_target() -> None:
    n = notification()
    keys = delivery_keys(n, "dingtalkbot/team-a/oncall")
    assert len(keys) == 2
    assert keys == {alert_key(n, a, "dingtalkbot/team-a/oncall") for a in n.alerts}


def test_the_same_notification_retried_has_the_same_keys() -> None:
    assert delivery_keys(notification(), "t") == delivery_keys(notification(), "t")


def test_keys_differ_per_target_group_status_and_episode() -> None:
    base = delivery_keys(notification(), "email/team-a/sre")
    assert base.isdisjoint(delivery_keys(notification(), "dingtalkbot/team-a/oncall"))
    assert base.isdisjoint(delivery_keys(notification(groupKey="other"), "email/team-a/sre"))
    resolved = dict(copy.deepcopy(FIRING_API), status="resolved", endsAt="2026-11-26T12:00:00Z")
    firing_key = delivery_keys(notification(alerts=[FIRING_API]), "t")
    assert firing_key.isdisjoint(delivery_keys(notification(alerts=[resolved]), "t"))
    again = dict(copy.deepcopy(FIRING_API), startsAt="2026-11-26T13:00:00Z")
    assert firing_key.isdisjoint(delivery_keys(notification(alerts=[again]), "t"))


def test_an_alert_without_fingerprint_is_keyed_by_its_labels() -> None:
    a = dict(copy.deepcopy(FIRING_API), fingerprint="")
    b = copy.deepcopy(a)
    b["labels"]["service"] = "other"
    ka = delivery_keys(notification(alerts=[a]), "t")
    assert ka == delivery_keys(notification(alerts=[copy.deepcopy(a)]), "t")
    assert ka.isdisjoint(delivery_keys(notification(alerts=[b]), "t"))


def test_keys_hold_no_personal_data_or_labels() -> None:
    for key in delivery_keys(notification(), "email/alice@example.com"):
        assert "alice" not in key and "team-a" not in key
        assert len(key) == 32


def test_seen_window_remembers_until_expiry() -> None:
    window = SeenWindow(ttl=60.0)
    assert not window.seen("k", 0.0)
    window.remember("k", 10.0)
    assert window.seen("k", 10.0)
    assert window.seen("k", 69.9)
    assert not window.seen("k", 70.0)


def test_remembering_again_extends_and_prune_forgets_only_the_expired() -> None:
    window = SeenWindow(ttl=60.0)
    window.remember("a", 0.0)
    window.remember("b", 0.0)
    window.remember("a", 30.0)  # seen again: kept until 90
    window.prune(60.0)
    assert len(window) == 1
    assert window.seen("a", 60.0) and not window.seen("b", 60.0)
    window.prune(90.0)
    assert len(window) == 0


def test_prune_keeps_memory_bounded_under_churn() -> None:
    window = SeenWindow(ttl=10.0)
    for t in range(1_000):
        window.remember(f"k{t}", float(t))
        window.prune(float(t))
    assert len(window) <= 11
    assert len(window._heap) <= 11


def test_a_key_remembered_later_is_not_cut_short_by_an_earlier_copy() -> None:
    window = SeenWindow(ttl=60.0)
    window.remember("k", 30.0)
    window.remember("k", 10.0)  # handed over from a leader that saw it earlier
    assert window.seen("k", 89.0)


def test_remembered_keys_are_handed_over_with_their_age() -> None:
    window = SeenWindow(ttl=60.0)
    window.remember("old", 0.0)
    window.remember("a", 20.0)
    window.remember("b", 39.95)
    text = encode_seen(window.remembered(now=65.0), now=65.0)
    assert "old" not in text  # expired at 60
    read = decode_seen(text, at=70.0)  # read 5 s after it was written
    assert read is not None
    assert {key: round(at, 6) for key, at in read} == {"a": 25.0, "b": 45.0}
    successor = SeenWindow(ttl=60.0)
    for key, at in read:
        successor.remember(key, at)
    assert successor.seen("a", 84.9) and successor.seen("b", 104.9)
    assert not successor.seen("a", 85.0)


def test_only_the_most_recent_keys_are_handed_over_when_they_do_not_all_fit() -> None:
    keys = [(f"{i:032x}", float(i)) for i in range(100)]
    text = encode_seen(keys, now=100.0, max_bytes=1_000)
    assert len(text) <= 1_000
    read = decode_seen(text, at=100.0)
    assert read is not None and 0 < len(read) < 100
    kept = {int(key, 16) for key, _ in read}
    assert kept == set(range(100 - len(kept), 100))


@pytest.mark.parametrize("text", [
    None, "", "[1]", "not json", '{"v":2,"keys":{}}', '{"v":1,"keys":[]}',
    '{"v":1,"keys":{"k":-1}}', '{"v":1,"keys":{"k":1.5}}', '{"v":1,"keys":{"k":true}}',
])
def test_handed_over_keys_that_cannot_be_read_are_none(text: str | None) -> None:
    assert decode_seen(text, at=10.0) is None
