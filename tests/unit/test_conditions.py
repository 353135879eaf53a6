"""Condition building, lastTransitionTime, zero-write status patches, transitions."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_contacts.domain.conditions import (
    bot_status,
    contact_conditions,
    contact_status,
    merge_conditions,
    now_rfc3339,
    status_patch,
    transition,
)
from alert_contacts.domain.decisions import READY_MESSAGE, Conflict, Decision
from alert_contacts.domain.types import Claim, ObjectRef, Reason

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-02T00:00:00Z"

READY = Decision(
    valid=True,
    unique=True,
    within_quota=True,
    reason=Reason.ACCEPTED,
    message=READY_MESSAGE,
    normalized={"mobile": "+8613800138000", "email": "alice@example.com"},
    position=1,
)
DUP_MSG = "email alice@example.com is already used by Contact team-b/alice2"
DUPLICATE = Decision(
    valid=True,
    unique=False,
    within_quota=None,
    reason=Reason.DUPLICATE_EMAIL,
    message=DUP_MSG,
    normalized={"email": "alice@example.com"},
    conflicts=(
        Conflict(Claim("email", "alice@example.com"), ObjectRef("Contact", "team-b", "alice2")),
    ),
)
QUOTA_MSG = (
    "quota of 1 contacts and DingTalk bots is full (1 in use); "
    "this object is number 2 in creation order"
)
OVER_QUOTA = Decision(
    valid=True,
    unique=True,
    within_quota=False,
    reason=Reason.QUOTA_EXCEEDED,
    message=QUOTA_MSG,
    normalized={"email": "alice@example.com"},
    position=2,
)
INVALID = Decision(
    valid=False,
    unique=None,
    within_quota=None,
    reason=Reason.INVALID_SPEC,
    message="spec.email 'x': is not a valid email address",
)
NO_SECRET = Decision(
    valid=False,
    unique=None,
    within_quota=None,
    reason=Reason.SECRET_NOT_FOUND,
    message="spec.webhook.secretRef: Secret team-a/oncall-bot not found",
)


def _table(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (
            READY,
            {
                "Ready": ("True", "Accepted"),
                "Valid": ("True", "Valid"),
                "Unique": ("True", "Unique"),
                "WithinQuota": ("True", "WithinQuota"),
            },
        ),
        (
            DUPLICATE,
            {
                "Ready": ("False", "DuplicateEmail"),
                "Valid": ("True", "Valid"),
                "Unique": ("False", "DuplicateEmail"),
                "WithinQuota": ("Unknown", "DuplicateEmail"),
                "Stalled": ("True", "DuplicateEmail"),
            },
        ),
        (
            OVER_QUOTA,
            {
                "Ready": ("False", "QuotaExceeded"),
                "Valid": ("True", "Valid"),
                "Unique": ("True", "Unique"),
                "WithinQuota": ("False", "QuotaExceeded"),
                "Stalled": ("True", "QuotaExceeded"),
            },
        ),
        (
            INVALID,
            {
                "Ready": ("False", "InvalidSpec"),
                "Valid": ("False", "InvalidSpec"),
                "Unique": ("Unknown", "InvalidSpec"),
                "WithinQuota": ("Unknown", "InvalidSpec"),
                "Stalled": ("True", "InvalidSpec"),
            },
        ),
        (
            NO_SECRET,
            {
                "Ready": ("False", "SecretNotFound"),
                "Valid": ("False", "SecretNotFound"),
                "Unique": ("Unknown", "SecretNotFound"),
                "WithinQuota": ("Unknown", "SecretNotFound"),
                "Stalled": ("True", "SecretNotFound"),
            },
        ),
    ],
)
def test_contact_conditions_table(decision: Decision, expected: dict[str, tuple[str, str]]) -> None:
    conditions = contact_conditions(decision, generation=3)
    assert _table(conditions) == expected
    assert conditions[0]["type"] == "Ready"
    for c in conditions:
        assert set(c) == {"type", "status", "reason", "message", "observedGeneration"}
        assert c["observedGeneration"] == 3
        assert re.fullmatch(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?", c["reason"])
        assert isinstance(c["message"], str)
        assert type(c["reason"]) is str


@pytest.mark.parametrize("decision", [DUPLICATE, OVER_QUOTA, INVALID, NO_SECRET])
def test_not_ready_message_is_on_ready_and_stalled(decision: Decision) -> None:
    by_type = {c["type"]: c for c in contact_conditions(decision, 1)}
    assert by_type["Ready"]["message"] == decision.message
    assert by_type["Stalled"]["message"] == decision.message


def test_contact_status_shapes() -> None:
    status = contact_status(READY, 4)
    assert status["observedGeneration"] == 4
    assert status["normalized"] == {"mobile": "+8613800138000", "email": "alice@example.com"}
    assert contact_status(INVALID, 4)["normalized"] is None
    assert "normalized" not in bot_status(READY, 4)


def test_duplicate_of_names_the_owner_and_goes_away_when_unique() -> None:
    # The `Duplicate Of` column of `kubectl get -o wide`.
    assert contact_status(DUPLICATE, 2)["duplicateOf"] == "Contact team-b/alice2"
    assert bot_status(DUPLICATE, 2)["duplicateOf"] == "Contact team-b/alice2"
    stored = _written(contact_status(DUPLICATE, 2), None, T0)
    patch = status_patch(stored, contact_status(READY, 3), now=T1)
    assert patch is not None and patch["status"]["duplicateOf"] is None  # removed


def test_now_is_rfc3339_seconds_utc() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())


# --- lastTransitionTime --------------------------------------------------------


def test_transition_time_kept_while_status_unchanged_even_if_reason_changes() -> None:
    first = merge_conditions(contact_conditions(DUPLICATE, 1), None, T0)
    assert {c["lastTransitionTime"] for c in first} == {T0}

    second = merge_conditions(contact_conditions(INVALID, 2), first, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in second}
    # Ready stays False, Stalled True, Unique False -> Unknown, Valid True -> False.
    assert times == {
        "Ready": T0,
        "Stalled": T0,
        "Unique": T1,
        "Valid": T1,
        "WithinQuota": T0,
    }


def test_transition_time_moves_on_flip_and_for_new_conditions() -> None:
    old = merge_conditions(contact_conditions(READY, 1), None, T0)
    new = merge_conditions(contact_conditions(OVER_QUOTA, 1), old, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in new}
    assert times == {
        "Ready": T1,
        "Valid": T0,
        "Unique": T0,
        "WithinQuota": T1,
        "Stalled": T1,
    }


def test_merge_conditions_ignores_garbage_and_missing_times() -> None:
    existing: list[Any] = ["junk", {"type": "Ready", "status": "True"}]
    merged = merge_conditions(contact_conditions(READY, 1), existing, T1)
    assert all(c["lastTransitionTime"] == T1 for c in merged)


# --- status_patch --------------------------------------------------------------


def _written(desired: dict[str, Any], current: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """What the server holds after applying our patch (RFC 7386 on status)."""
    patch = status_patch(current, desired, now=now)
    assert patch is not None
    stored: dict[str, Any] = _apply_merge_patch(copy.deepcopy(current or {}), patch["status"])
    return stored


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


def test_first_write_then_no_write() -> None:
    desired = contact_status(READY, 1)
    stored = _written(desired, None, T0)
    assert stored["normalized"] == desired["normalized"]
    assert all(c["lastTransitionTime"] == T0 for c in stored["conditions"])
    assert status_patch(stored, contact_status(READY, 1), now=T1) is None


def test_no_write_when_server_reorders_conditions_and_adds_keys() -> None:
    stored = _written(contact_status(DUPLICATE, 2), None, T0)
    from_server = {
        **stored,
        "kopf": {"progress": {}},
        "conditions": [{**c, "extra": "x"} for c in reversed(stored["conditions"])],
        "normalized": dict(reversed(list(stored["normalized"].items()))),
    }
    assert status_patch(from_server, contact_status(DUPLICATE, 2), now=T1) is None


def test_transition_time_alone_does_not_cause_a_write() -> None:
    stored = _written(contact_status(READY, 1), None, T0)
    for c in stored["conditions"]:
        c["lastTransitionTime"] = "1999-01-01T00:00:00Z"
    assert status_patch(stored, contact_status(READY, 1), now=T1) is None
    for c in stored["conditions"]:
        del c["lastTransitionTime"]
    assert status_patch(stored, contact_status(READY, 1), now=T1) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(observedGeneration=1),
        lambda s: s["conditions"].pop(),
        lambda s: s["conditions"].append({"type": "Stalled", "status": "True", "reason": "X"}),
        lambda s: s["conditions"].append(dict(s["conditions"][0])),
        lambda s: s["conditions"][0].update(message="old message"),
        lambda s: s["conditions"][0].update(observedGeneration=1),
        lambda s: s["normalized"].update(mobile="+8613900139000"),
        lambda s: s.pop("normalized"),
        lambda s: s.update(conditions="not a list"),
    ],
)
def test_any_real_difference_writes(change: Any) -> None:
    desired = contact_status(READY, 2)
    stored = _written(desired, None, T0)
    change(stored)
    patch = status_patch(stored, desired, now=T1)
    assert patch is not None
    after = _apply_merge_patch(stored, patch["status"])
    assert status_patch(after, desired, now=T1) is None


def test_patch_carries_full_condition_list_and_keeps_unchanged_times() -> None:
    stored = _written(contact_status(READY, 1), None, T0)
    patch = status_patch(stored, contact_status(DUPLICATE, 2), now=T1)
    assert patch is not None
    body = patch["status"]
    assert body["observedGeneration"] == 2
    assert [c["type"] for c in body["conditions"]] == [
        "Ready",
        "Valid",
        "Unique",
        "WithinQuota",
        "Stalled",
    ]
    times = {c["type"]: c["lastTransitionTime"] for c in body["conditions"]}
    assert times == {"Ready": T1, "Valid": T0, "Unique": T1, "WithinQuota": T1, "Stalled": T1}


def test_normalized_keys_that_disappear_are_nulled_and_invalid_removes_all() -> None:
    stored = _written(contact_status(READY, 1), None, T0)
    patch = status_patch(stored, contact_status(DUPLICATE, 2), now=T1)
    assert patch is not None
    assert patch["status"]["normalized"] == {"email": "alice@example.com", "mobile": None}

    patch = status_patch(stored, contact_status(INVALID, 2), now=T1)
    assert patch is not None
    assert patch["status"]["normalized"] is None
    after = _apply_merge_patch(stored, patch["status"])
    assert "normalized" not in after
    assert status_patch(after, contact_status(INVALID, 2), now=T1) is None


def test_no_normalized_null_when_there_is_nothing_to_remove() -> None:
    patch = status_patch(None, contact_status(INVALID, 1), now=T0)
    assert patch is not None
    assert "normalized" not in patch["status"]


_decisions = st.sampled_from([READY, DUPLICATE, OVER_QUOTA, INVALID, NO_SECRET])


@given(st.lists(st.tuples(_decisions, st.integers(1, 3)), min_size=1, max_size=6))
def test_sequence_of_reconciles_converges_and_times_follow_status(
    steps: list[tuple[Decision, int]],
) -> None:
    stored: dict[str, Any] = {}
    for i, (decision, generation) in enumerate(steps):
        now = f"2024-01-01T00:00:{i:02d}Z"
        before = {c["type"]: c for c in stored.get("conditions", [])}
        desired = contact_status(decision, generation)
        patch = status_patch(stored, desired, now=now)
        if patch is not None:
            stored = _apply_merge_patch(stored, patch["status"])
        assert status_patch(stored, desired, now="2030-01-01T00:00:00Z") is None
        for c in stored["conditions"]:
            old = before.get(c["type"])
            if old is not None and old["status"] == c["status"]:
                assert c["lastTransitionTime"] == old["lastTransitionTime"]
            elif patch is not None:
                assert c["lastTransitionTime"] == now


# --- transition ----------------------------------------------------------------


def test_transition_on_first_status_and_on_ready_flip() -> None:
    ready = _written(contact_status(READY, 1), None, T0)
    dup = contact_status(DUPLICATE, 1)
    assert transition(None, ready) == ("Normal", "Accepted", READY_MESSAGE)
    assert transition(ready, dup) == ("Warning", "DuplicateEmail", DUP_MSG)
    assert transition(dup, ready) == ("Normal", "Accepted", READY_MESSAGE)


def test_transition_on_reason_change_only_and_not_on_message_change() -> None:
    dup = contact_status(DUPLICATE, 1)
    quota = contact_status(OVER_QUOTA, 1)
    assert transition(dup, quota) == ("Warning", "QuotaExceeded", QUOTA_MSG)
    assert transition(dup, contact_status(DUPLICATE, 2)) is None
    reworded = copy.deepcopy(dup)
    reworded["conditions"][0]["message"] = "something else"
    assert transition(dup, reworded) is None


def test_no_transition_without_new_ready() -> None:
    assert transition(contact_status(READY, 1), {"conditions": []}) is None
    assert transition(None, None) is None


def test_stale_normalized_alone_causes_its_removal() -> None:
    desired = contact_status(INVALID, 1)
    stored = _written(desired, None, T0)
    stored["normalized"] = {"email": "old@example.com"}
    patch = status_patch(stored, desired, now=T1)
    assert patch is not None
    assert patch["status"]["normalized"] is None
