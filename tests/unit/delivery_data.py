"""Alertmanager notifications for the delivery tests (payload version 4, as posted)."""

from __future__ import annotations

import copy
import json
from typing import Any
from zoneinfo import ZoneInfo

from alert_contacts.domain.alerts import Notification, parse_notification

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")

FIRING_API: dict[str, Any] = {
    "status": "firing",
    "labels": {
        "alertname": "HighLatency",
        "namespace": "team-a",
        "service": "api",
        "severity": "critical",
    },
    "annotations": {
        "summary": "p99 latency above 2s",
        "description": "api p99 is 3.1s for 10 minutes",
    },
    "startsAt": "2026-11-26T11:20:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=x",
    "fingerprint": "a1b2c3d4e5f60718",
}

RESOLVED_WEB: dict[str, Any] = {
    "status": "resolved",
    "labels": {
        "alertname": "HighLatency",
        "namespace": "team-a",
        "service": "web",
        "severity": "critical",
    },
    "annotations": {"summary": "p99 latency above 2s"},
    "startsAt": "2026-11-26T10:00:00Z",
    "endsAt": "2026-11-26T10:45:30Z",
    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=y",
    "fingerprint": "0f1e2d3c4b5a6978",
}

PAYLOAD: dict[str, Any] = {
    "version": "4",
    "status": "firing",
    "receiver": "team-a/sre",
    "groupKey": '{}/{namespace="team-a"}:{alertname="HighLatency", namespace="team-a"}',
    "truncatedAlerts": 0,
    "groupLabels": {"alertname": "HighLatency", "namespace": "team-a"},
    "commonLabels": {"alertname": "HighLatency", "namespace": "team-a", "severity": "critical"},
    "commonAnnotations": {"summary": "p99 latency above 2s"},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [FIRING_API, RESOLVED_WEB],
}


def payload(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(PAYLOAD)
    document.update(changes)
    return document


def notification(**changes: Any) -> Notification:
    return parse_notification(json.dumps(payload(**changes)).encode())


def many_alerts(count: int, description_bytes: int, status: str = "firing") -> Notification:
    """``count`` distinct alerts, each with a description of about ``description_bytes``."""
    alerts = []
    for index in range(count):
        alert = copy.deepcopy(FIRING_API if status == "firing" else RESOLVED_WEB)
        alert["labels"]["pod"] = f"api-{index:04d}"
        alert["fingerprint"] = f"{index:016x}"
        alert["annotations"]["description"] = f"ALERT-{index:04d} " + "x" * description_bytes
        alerts.append(alert)
    return notification(alerts=alerts, status=status)
