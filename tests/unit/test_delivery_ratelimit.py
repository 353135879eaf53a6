"""The per-bot rate-limit schedule: never a 21st message in any 60-second window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_contacts.domain.ratelimit import next_send_at


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:  # half-open window [t0, t0 + window)
            start += 1
        best = max(best, end - start + 1)
    return best


def test_below_the_limit_a_message_goes_now() -> None:
    assert next_send_at([], 100.0) == 100.0
    assert next_send_at([float(t) for t in range(19)], 50.0) == 50.0


def test_the_21st_message_waits_for_the_first_to_leave_the_window() -> None:
    sent = [float(t) for t in range(20)]  # 20 messages at t = 0..19
    assert next_send_at(sent, 20.0) == 60.0
    assert next_send_at(sent, 75.0) == 75.0


def test_a_burst_then_a_steady_stream() -> None:
    sent = [10.0] * 20
    assert next_send_at(sent, 11.0) == 70.0


def test_scheduled_future_sends_are_counted_too() -> None:
    # 20 slots reserved at 60..79: nothing fits before 80 without crowding
    # a window with them, and at 59 a window [59, 119) would hold 21.
    sent = [60.0 + t for t in range(20)]
    assert next_send_at(sent, 0.0) == 0.0  # [0, 60) holds only this one
    assert next_send_at(sent, 30.0) == 120.0


def test_other_limits_and_windows() -> None:
    assert next_send_at([0.0, 1.0], 2.0, limit=2, window=10.0) == 10.0
    with pytest.raises(ValueError, match="limit"):
        next_send_at([], 0.0, limit=0)
    with pytest.raises(ValueError, match="window"):
        next_send_at([], 0.0, window=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=120),
)
def test_a_schedule_built_with_it_never_has_21_in_any_60_seconds(gaps: list[float]) -> None:
    """Messages arrive with arbitrary gaps; each is sent at next_send_at(...) or later."""
    sent: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        at = next_send_at(sent, now)
        assert at >= now
        sent.append(at)
    assert _max_in_any_window(sent, 60.0) <= 20
    # and it is not lazier than it must be: every wait ends exactly when a slot frees
    now = 0.0
    for index, gap in enumerate(gaps):
        now += gap
        at = sent[index]
        if at > now:
            assert any(abs(at - (s + 60.0)) < 1e-9 for s in sent[:index])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=300, allow_nan=False), max_size=60),
    st.floats(min_value=0, max_value=300, allow_nan=False),
)
def test_the_answer_fits_among_any_existing_valid_schedule(
    raw: list[float], now: float
) -> None:
    # Build a valid (<= 20 per window) set of times first, then add one.
    sent: list[float] = []
    for t in sorted(raw):
        if _max_in_any_window([*sent, t], 60.0) <= 20:
            sent.append(t)
    at = next_send_at(sent, now)
    assert at >= now
    assert _max_in_any_window([*sent, at], 60.0) <= 20
