"""Which parts of a notification a target already got, so a retry does not repeat them.

Alertmanager retries a notification after a 5xx; by then some targets may have
received it. A delivery key names one alert in one state for one target; the
runtime remembers the keys of what each target got for a while and skips those.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

from .alerts import Alert, Notification

# About Alertmanager's retry horizon: its retries of one notification come within minutes.
# A repeat_interval reminder is the same payload again, so the window must stay shorter than
# any repeat_interval or the reminder is taken for a retry and skipped (docs/alerting.md).
DEFAULT_WINDOW = 600.0


def alert_identity(alert: Alert) -> str:
    """The alert's fingerprint, or a stable hash of its labels when it has none."""
    if alert.fingerprint:
        return alert.fingerprint
    labels = "\x00".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return hashlib.sha256(labels.encode()).hexdigest()[:16]


def delivery_keys(notification: Notification, target: str) -> frozenset[str]:
    """One key per alert of the notification: target, groupKey, fingerprint, status.

    The start time is part of the key too, so the same alert firing again after
    it resolved (a new episode, same fingerprint) is not taken for a repeat.
    """
    return frozenset(alert_key(notification, alert, target) for alert in notification.alerts)


def alert_key(notification: Notification, alert: Alert, target: str) -> str:
    """The delivery key of one alert (one member of ``delivery_keys``)."""
    started = alert.starts_at.isoformat() if alert.starts_at else ""
    parts = (target, notification.group_key, alert_identity(alert), alert.status, started)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass
class SeenWindow:
    """Keys remembered for ``ttl`` seconds; times are passed in, never read from a clock."""

    ttl: float = DEFAULT_WINDOW
    _expiry: dict[str, float] = field(default_factory=dict, repr=False)
    _heap: list[tuple[float, str]] = field(default_factory=list, repr=False)

    def seen(self, key: str, now: float) -> bool:
        expires = self._expiry.get(key)
        return expires is not None and expires > now

    def remember(self, key: str, now: float) -> None:
        expires = now + self.ttl
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))

    def prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def __len__(self) -> int:
        return len(self._expiry)
