"""Which parts of a notification a target already got, so a retry does not repeat them.

Alertmanager retries a notification after a 5xx; by then some targets may have
received it. A delivery key names one alert in one state for one target; the
runtime remembers the keys of what each target got for a while and skips those.
The leader hands the keys it remembers to the next one through the leader Lease
(``encode_seen`` / ``decode_seen``), so a retry that reaches a new leader is not
sent again either.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from dataclasses import dataclass, field

from .alerts import Alert, Notification
from .handover import age_of, is_age, moment_of, read_versioned

# About Alertmanager's retry horizon: its retries of one notification come within minutes.
# A repeat_interval reminder is the same payload again, so the window must stay shorter than
# any repeat_interval or the reminder is taken for a retry and skipped (docs/alerting.md).
DEFAULT_WINDOW = 600.0
# The Lease annotation with the keys the leader remembers, and its largest size: about
# 1,500 keys, the most recent first (the Lease also carries ratelimit's history, and
# all of an object's annotations must stay under 256 KiB).
SEEN_ANNOTATION = "alerting.contacts.dev/delivered"
SEEN_MAX_BYTES = 65_536
SEEN_VERSION = 1


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
    """The delivery key of one alert (one member of ``delivery_keys``): 128 bits of a
    SHA-256, as many as the keys handed over in the Lease can afford."""
    started = alert.starts_at.isoformat() if alert.starts_at else ""
    parts = (target, notification.group_key, alert_identity(alert), alert.status, started)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


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
        if self._expiry.get(key, -math.inf) >= expires:
            return  # already remembered from later on (a key handed over twice)
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))

    def remembered(self, now: float) -> list[tuple[str, float]]:
        """The keys still remembered at ``now``, each with when it was remembered."""
        return [(key, expires - self.ttl) for key, expires in self._expiry.items()
                if expires > now]

    def prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def __len__(self) -> int:
        return len(self._expiry)


def encode_seen(keys: list[tuple[str, float]], now: float,
                max_bytes: int = SEEN_MAX_BYTES) -> str:
    """``keys`` (each with when it was remembered) as the annotation text: ages at
    ``now`` in tenths of a second, the most recent first, as many as fit in
    ``max_bytes``; the older ones are left out (a retry of those may be sent again)."""
    kept: dict[str, int] = {}
    size = 32  # the envelope
    for key, at in sorted(keys, key=lambda item: item[1], reverse=True):
        age = age_of(at, now)
        entry = len(key) + len(str(age)) + 4  # "key":age,
        if size + entry > max_bytes:
            break
        kept[key] = age
        size += entry
    return json.dumps({"v": SEEN_VERSION, "keys": kept}, separators=(",", ":"))


def decode_seen(text: str | None, at: float) -> list[tuple[str, float]] | None:
    """The keys an annotation written no later than ``at`` holds, each with when it was
    remembered on the reader's clock; None when there is none or it cannot be read."""
    body = read_versioned(text, SEEN_VERSION)
    keys = None if body is None else body.get("keys")
    if not isinstance(keys, dict) or not all(is_age(age) for age in keys.values()):
        return None
    return [(str(key), moment_of(age, at)) for key, age in keys.items()]
