"""Alertmanager's webhook payload: what is accepted, and how a bad one is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alert_contacts.domain.alerts import (
    Notification,
    PayloadError,
    notification_title,
    parse_notification,
    silence_url,
)

from .delivery_data import payload


def test_a_version_4_payload_is_read_with_every_field() -> None:
    n = parse_notification(json.dumps(payload()).encode())
    assert n.status == "firing"
    assert n.receiver == "team-a/sre"
    assert n.group_key.startswith("{}/")
    assert n.group_labels == {"alertname": "HighLatency", "namespace": "team-a"}
    assert n.common_labels["severity"] == "critical"
    assert n.common_annotations == {"summary": "p99 latency above 2s"}
    assert n.external_url == "http://alertmanager.example:9093"
    assert n.truncated_alerts == 0
    firing, resolved = n.alerts
    assert firing.status == "firing" and resolved.status == "resolved"
    assert firing.starts_at == datetime(2026, 11, 26, 11, 20, tzinfo=UTC)
    assert firing.ends_at is None  # Go's zero time means "not set"
    assert resolved.ends_at == datetime(2026, 11, 26, 10, 45, 30, tzinfo=UTC)
    assert firing.generator_url.startswith("http://prometheus.example:9090/")
    assert firing.fingerprint == "a1b2c3d4e5f60718"
    assert [a.name for a in n.firing] == ["HighLatency"]
    assert len(n.resolved) == 1


def test_fields_a_later_alertmanager_adds_are_tolerated() -> None:
    document = payload(newTopLevel={"x": 1})
    document["alerts"][0]["newAlertField"] = "y"
    n = parse_notification(json.dumps(document).encode())
    assert len(n.alerts) == 2


def test_timestamps_with_nanoseconds_and_offsets_are_read() -> None:
    document = payload()
    document["alerts"][0]["startsAt"] = "2026-11-26T19:20:00.123456789+08:00"
    n = parse_notification(json.dumps(document).encode())
    assert n.alerts[0].starts_at is not None
    assert n.alerts[0].starts_at.astimezone(UTC).hour == 11


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "the body is not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "must be a JSON object, not list"),
        (json.dumps({"status": "firing", "alerts": []}).encode(), "version: is required"),
        (json.dumps(payload(version="3")).encode(), "version: must be '4'"),
        (
            json.dumps({k: v for k, v in payload().items() if k != "alerts"}).encode(),
            "alerts: is required",
        ),
        (json.dumps(payload(alerts={"a": 1})).encode(), "alerts: Input should be a valid list"),
        (json.dumps(payload(status="pending")).encode(), "status: Input should be 'firing'"),
    ],
)
def test_a_bad_payload_is_refused_naming_the_field(body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body)
    assert expected in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_bad_alert_is_named_by_its_index() -> None:
    document = payload()
    document["alerts"][1]["status"] = "pending"
    document["alerts"][1]["labels"] = ["not", "a", "map"]
    with pytest.raises(PayloadError) as caught:
        parse_notification(json.dumps(document).encode())
    assert "alerts[1].status" in str(caught.value)
    assert "alerts[1].labels" in str(caught.value)


def test_the_title_counts_firing_alerts_and_names_the_group() -> None:
    assert notification_title(_n()) == "[FIRING:1] HighLatency (team-a)"
    resolved = _n(status="resolved", alerts=[payload()["alerts"][1]])
    assert notification_title(resolved) == "[RESOLVED:1] HighLatency (team-a)"


def test_the_silence_link_uses_alertmanagers_filter_form() -> None:
    url = silence_url("http://am.example:9093/", {"alertname": "A", "job": 'x"y'})
    assert url == (
        "http://am.example:9093/#/silences/new?filter="
        "%7Balertname%3D%22A%22%2Cjob%3D%22x%5C%22y%22%7D"
    )  # {alertname="A",job="x\"y"}
    assert silence_url("", {"a": "b"}) is None
    assert silence_url("javascript:alert(1)", {"a": "b"}) is None


def _n(**changes: object) -> Notification:
    return parse_notification(json.dumps(payload(**changes)).encode())
