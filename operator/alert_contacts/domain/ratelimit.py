"""DingTalk's per-bot rate limit as a pure function of send times.

DingTalk accepts at most 20 messages a minute from one bot and throttles it
for ten minutes past that (errcode 130101), so the schedule must never put a
21st message into any 60-second window, whatever the spacing of the others.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

DINGTALK_LIMIT = 20
DINGTALK_WINDOW = 60.0


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
