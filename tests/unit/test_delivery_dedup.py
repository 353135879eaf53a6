"""Delivery keys and the seen-window: a retried notification does not reach a target twice."""

from __future__ import annotations

import copy

from alert_contacts.domain.dedup import SeenWindow, alert_key, delivery_keys

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
        assert len(key) == 64


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
