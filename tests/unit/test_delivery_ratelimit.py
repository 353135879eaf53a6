"""The per-bot rate-limit schedule: never a 21st message in any 60-second window, also
across a change of leader (the send history handed over through the Lease)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_contacts.domain.ratelimit import (
    SendHistory,
    decode_history,
    encode_history,
    next_send_at,
)


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


# ------------------------------------------------------------ the handed-over history

ROBOT_A, ROBOT_B = "a" * 16, "b" * 16


def test_a_history_read_back_places_each_send_no_earlier_than_it_was() -> None:
    history = SendHistory({ROBOT_A: (940.0, 990.05, 999.99), ROBOT_B: (900.0,)})
    text = encode_history(history, now=1000.0)
    read = decode_history(text, at=1003.0)  # seen 3 s after it was written
    assert read is not None and read.others is None
    # 940 s is 60 s old: out of the window, not written; robot B has nothing recent.
    assert set(read.robots) == {ROBOT_A}
    assert [round(t, 6) for t in read.robots[ROBOT_A]] == [993.1, 1003.0]  # 9.95 s: 9.9
    assert ROBOT_A in text and "999" not in text  # ages, not times of this clock


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=120, allow_nan=False), max_size=40),
    st.floats(min_value=0, max_value=30, allow_nan=False),
    st.floats(min_value=100, max_value=200, allow_nan=False),
)
def test_a_successor_never_sends_sooner_than_the_predecessor_could_have(
    sends: list[float], delay: float, now: float,
) -> None:
    """Whatever the predecessor sent, the successor's next send to that robot comes no
    sooner than the predecessor's own would have."""
    sent = [t for t in sends if t <= now]
    text = encode_history(SendHistory({ROBOT_A: tuple(sent)}), now=now)
    read = decode_history(text, at=now + delay)
    assert read is not None
    later = now + delay
    assert next_send_at(read.of(ROBOT_A), later) >= next_send_at(sent, later)


def test_unrecorded_sends_count_as_a_full_window_for_every_robot() -> None:
    history = SendHistory({ROBOT_A: (10.0,)}).with_unknown_until(30.0)
    assert history.of(ROBOT_B) == [30.0] * 20
    assert history.of(ROBOT_A) == [10.0, *[30.0] * 20]
    assert next_send_at(history.of(ROBOT_B), 31.0) == 90.0
    assert history.with_unknown_until(20.0).others == 30.0  # the later moment stays
    assert history.with_unknown_until(None) is history
    read = decode_history(encode_history(history, now=40.0), at=40.0)
    assert read is not None and read.others == 30.0


def test_robots_beyond_the_size_limit_fold_into_the_unknown_moment() -> None:
    robots = {f"{i:016x}": tuple(float(500 + i + k / 10) for k in range(20))
              for i in range(40)}
    text = encode_history(SendHistory(robots), now=560.0, max_bytes=2_000)
    assert len(text) <= 2_000
    read = decode_history(text, at=560.0)
    assert read is not None and read.others is not None
    assert 0 < len(read.robots) < 40
    # The most recent robots are kept; the latest send of those left out is the moment
    # any robot may have had a full window.
    dropped = [r for r in robots if r not in read.robots]
    assert min(int(r, 16) for r in read.robots) > max(int(r, 16) for r in dropped)
    newest_dropped = max(robots[r][-1] for r in dropped)
    assert newest_dropped <= read.others <= newest_dropped + 0.1


@pytest.mark.parametrize("text", [
    None, "", "not json", "[]", '{"v":2,"robots":{}}', '{"v":1}', '{"v":1,"robots":[]}',
    '{"v":1,"robots":{"r":[-1]}}', '{"v":1,"robots":{"r":[1.5]}}',
    '{"v":1,"robots":{"r":"12"}}', '{"v":1,"robots":{},"others":true}',
    '{"v":1,"robots":{"r":[true]}}',
])
def test_a_history_that_cannot_be_read_is_none(text: str | None) -> None:
    assert decode_history(text, at=100.0) is None
