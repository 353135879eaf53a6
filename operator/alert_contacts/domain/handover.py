"""How a leader writes state for the next one into the leader Lease's annotations.

Each annotation is compact JSON with a version ``v``; times are written as ages in
tenths of a second at the moment of writing, rounded down, and read back as the
reader's own time of observation minus the age (``runtime.lease.Predecessor``):
a time is never placed earlier than it was, whatever the two clocks read. The
contents are ``domain.ratelimit``'s (each robot's sends) and ``domain.dedup``'s
(the delivery keys).
"""

from __future__ import annotations

import json
import math
from typing import Any


def age_of(moment: float, now: float) -> int:
    """``moment``'s age at ``now``, in whole tenths of a second (rounded down)."""
    return max(0, math.floor((now - moment) * 10))


def moment_of(age: int, at: float) -> float:
    """The moment an ``age_of`` read at ``at`` stands for."""
    return at - age / 10


def is_age(value: object) -> bool:
    """Whether ``value`` is an age as ``age_of`` writes it."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_versioned(text: str | None, version: int) -> dict[str, Any] | None:
    """The JSON object in ``text`` when it is of ``version``; None when there is
    none or it cannot be read (another version, a hand edit)."""
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != version:
        return None
    return body
