"""DingTalk's per-bot rate limit as a pure function of send times.

DingTalk accepts at most 20 messages a minute from one bot and throttles it
for ten minutes past that (errcode 130101), so the schedule must never put a
21st message into any 60-second window, whatever the spacing of the others.

A new leader inherits its predecessor's recent sends through the leader Lease
(``SendHistory``, written as an annotation by ``encode_history`` and read back
by ``decode_history``): without them it could not know what went out in the
last minute, and would have to count every robot's window as full.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alert_contacts.domain.handover import age_of, is_age, moment_of, read_versioned

DINGTALK_LIMIT = 20
DINGTALK_WINDOW = 60.0

# The Lease annotation that carries the leader's recent sends, and its largest size:
# the Lease is renewed with it every few seconds and all of an object's annotations
# must stay under 256 KiB. About 300 robots at their full 20 a minute fit.
HISTORY_ANNOTATION = "alerting.contacts.dev/dingtalk-sends"
HISTORY_MAX_BYTES = 32_768
HISTORY_VERSION = 1


def next_send_at(
    sent: Sequence[float],
    now: float,
    limit: int = DINGTALK_LIMIT,
    window: float = DINGTALK_WINDOW,
) -> float:
    """The earliest time >= ``now`` at which one more message may be sent.

    ``sent`` holds the times of messages already sent (or already scheduled,
    also in the future), in any order. The result keeps every half-open window
    ``[t, t + window)`` at ``limit`` messages or fewer.
    """
    if limit < 1:
        raise ValueError(f"limit {limit}: must be at least 1")
    if window <= 0:
        raise ValueError(f"window {window}: must be positive")
    times = sorted(sent)
    # The first feasible time is now, or the moment an earlier send leaves the window.
    candidates = sorted({now, *(t + window for t in times if t + window > now)})
    for candidate in candidates:
        if _fits(times, candidate, limit, window):
            return candidate
    # Unreachable: past the last candidate every earlier send has left the window
    # only if no send lies in the future; otherwise the last candidate fits.
    return candidates[-1]


def _fits(times: list[float], candidate: float, limit: int, window: float) -> bool:
    """Whether adding ``candidate`` keeps each ``limit + 1`` consecutive sends a window apart."""
    lo = bisect.bisect_right(times, candidate - window)
    hi = bisect.bisect_left(times, candidate + window)
    near = times[lo:hi]
    bisect.insort(near, candidate)
    index = near.index(candidate)
    for start in range(max(0, index - limit), min(index, len(near) - limit - 1) + 1):
        if near[start + limit] - near[start] < window:
            return False
    return True


# ------------------------------------------------------------ handing sends over


@dataclass(frozen=True)
class SendHistory:
    """Recent sends per robot, on one clock.

    ``robots`` maps a robot (``BotTarget.robot``, a hash of its webhook) to the
    times of its sends. ``others``, when set, is a moment at which any robot,
    listed or not, may have had its whole limit of sends that nobody recorded
    (the predecessor's last seconds after a crash, or robots left out for size).
    """

    robots: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    others: float | None = None

    def of(self, robot: str, limit: int = DINGTALK_LIMIT) -> list[float]:
        """The send times to count for ``robot``."""
        unknown = [] if self.others is None else [self.others] * limit
        return sorted([*self.robots.get(robot, ()), *unknown])

    def with_unknown_until(self, moment: float | None) -> SendHistory:
        """This history, plus a full limit of unrecorded sends to every robot at ``moment``."""
        if moment is None:
            return self
        others = moment if self.others is None else max(self.others, moment)
        return SendHistory(self.robots, others)


def encode_history(history: SendHistory, now: float, window: float = DINGTALK_WINDOW,
                   max_bytes: int = HISTORY_MAX_BYTES) -> str:
    """``history`` as the annotation text: each send's age at ``now`` in tenths of a
    second, rounded down (a reader places it no earlier than it was), within
    ``window`` only. The most recently sent-to robots are written first; from the
    first that does not fit in ``max_bytes`` on, the rest are folded into
    ``others`` at the latest of their sends."""

    recent = {robot: sorted((t for t in times if t > now - window), reverse=True)
              for robot, times in history.robots.items()}
    recent = {robot: times for robot, times in recent.items() if times}
    others = history.others if history.others is not None and history.others > now - window \
        else None
    kept: dict[str, list[int]] = {}
    size = 64  # the envelope, with room for "others"
    for robot in sorted(recent, key=lambda r: recent[r][0], reverse=True):
        ages = [age_of(t, now) for t in recent[robot]]
        entry = len(json.dumps({robot: ages}, separators=(",", ":")))
        if size + entry > max_bytes:  # this robot and every less recent one
            newest = recent[robot][0]
            others = newest if others is None else max(others, newest)
            break
        kept[robot] = ages
        size += entry
    body: dict[str, object] = {"v": HISTORY_VERSION, "robots": kept}
    if others is not None:
        body["others"] = age_of(others, now)
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def decode_history(text: str | None, at: float) -> SendHistory | None:
    """The history an annotation written no later than ``at`` records, on the reader's
    clock (each send placed at ``at`` minus its age: never earlier than it was);
    None when there is none or it cannot be read (another version, a hand edit)."""
    body = read_versioned(text, HISTORY_VERSION)
    if body is None:
        return None
    robots, others = body.get("robots"), body.get("others")
    if not isinstance(robots, dict) or not (others is None or is_age(others)):
        return None
    if not all(isinstance(ages, list) and all(is_age(a) for a in ages)
               for ages in robots.values()):
        return None
    return SendHistory(
        {str(robot): tuple(sorted(moment_of(a, at) for a in ages))
         for robot, ages in robots.items()},
        None if others is None else moment_of(others, at),
    )

