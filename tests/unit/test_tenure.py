"""Reading and writing the tenure records of status (domain.tenure)."""

from __future__ import annotations

from typing import Any

from alert_contacts.domain.decisions import decide
from alert_contacts.domain.plan import candidate_of, claimant_status, plan_status
from alert_contacts.domain.records import record_of
from alert_contacts.domain.tenure import (
    PENDING,
    claim_records,
    claim_value,
    order_time,
    tenure,
    tenure_records,
)
from alert_contacts.domain.types import Claim
from alert_contacts.domain.validation import validate_contact
from alert_contacts.settings import Settings

EMAIL = Claim("email", "alice@example.com")
TOKEN = Claim("webhook", "0123456789abcdef0123")
CREATED = "2026-01-01T00:00:00.000000Z"
SETTINGS = Settings()


def test_order_time_makes_second_and_microsecond_times_comparable() -> None:
    assert order_time("2026-01-01T00:00:01Z") == "2026-01-01T00:00:01.000000Z"
    assert order_time("2026-01-01T00:00:00.5Z") == "2026-01-01T00:00:00.500000Z"
    assert order_time("2026-01-01T00:00:00.5Z") < order_time("2026-01-01T00:00:01Z")  # type: ignore[operator]
    assert order_time("yesterday") is None and order_time(None) is None
    assert PENDING > "2099-12-31T23:59:59.999999Z"


def test_a_matching_record_is_honoured() -> None:
    status = {"observedGeneration": 3, "eligibleSince": "2026-02-01T00:00:00Z",
              "claims": [{"key": "email", "value": EMAIL.value, "since": "2026-01-05T00:00:00Z"}]}
    since, eligible = tenure([EMAIL], uid="u", created=CREATED, generation=3, status=status)
    assert since == {EMAIL: "2026-01-05T00:00:00.000000Z"}
    assert eligible == "2026-02-01T00:00:00.000000Z"


def test_a_record_of_another_value_is_not_honoured_and_the_new_value_is_pending() -> None:
    status = {"observedGeneration": 3,
              "claims": [{"key": "email", "value": "old@example.com", "since": CREATED}]}
    since, eligible = tenure([EMAIL], uid="u", created=CREATED, generation=4, status=status)
    assert since == {EMAIL: PENDING} and eligible == PENDING


def test_an_edit_the_operator_has_not_seen_does_not_inherit_the_creation_time() -> None:
    # Status written by an earlier version (no claims), spec edited since.
    status = {"observedGeneration": 1}
    since, _ = tenure([EMAIL], uid="u", created=CREATED, generation=2, status=status)
    assert since == {EMAIL: PENDING}


def test_without_any_record_the_creation_time_counts() -> None:
    for status in ({}, {"observedGeneration": 2}):
        since, eligible = tenure([EMAIL], uid="u", created=CREATED, generation=2, status=status)
        assert since == {EMAIL: CREATED} and eligible == CREATED


def test_a_webhook_token_is_recorded_as_a_keyed_digest_only() -> None:
    value = claim_value(TOKEN, "uid-1")
    assert value.startswith("hmac-sha256:") and len(value) == len("hmac-sha256:") + 16
    assert TOKEN.value not in value and TOKEN.value[-4:] not in value
    assert claim_value(TOKEN, "uid-2") != value  # keyed by the object
    records = claim_records([TOKEN], {TOKEN: PENDING}, "uid-1", "2026-03-01T00:00:00.250000Z")
    assert records == [{"key": "webhook", "value": value, "since": "2026-03-01T00:00:00.250000Z"}]
    since, _ = tenure([TOKEN], uid="uid-1", created=CREATED, generation=1,
                      status={"claims": records})
    assert since == {TOKEN: "2026-03-01T00:00:00.250000Z"}


def contact(status: dict[str, Any], generation: int = 1) -> Any:
    spec = {"email": "alice@example.com"}
    return record_of("Contact", {
        "metadata": {"name": "alice", "namespace": "a", "uid": "u1", "generation": generation,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec, "status": status}, validate_contact(spec, SETTINGS))


def test_the_first_write_records_creation_time_and_then_nothing_changes() -> None:
    first = plan_status([contact({})], [], [], {}, SETTINGS, "2026-03-01T00:00:00Z")
    (write,) = first.writes
    assert write.desired["claims"] == [
        {"key": "email", "value": "alice@example.com", "since": "2026-01-01T00:00:00Z"}]
    assert write.desired["eligibleSince"] == "2026-01-01T00:00:00Z"
    again = plan_status([contact(write.desired)], [], [], {}, SETTINGS, "2026-03-02T00:00:00Z")
    assert again.writes == []


def test_an_invalid_object_records_no_claims_and_no_eligibility() -> None:
    spec = {"email": "not-an-email"}
    record = record_of("Contact", {"metadata": {"name": "b", "namespace": "a", "uid": "u"},
                                   "spec": spec}, validate_contact(spec, SETTINGS))
    candidate = candidate_of(record, validate_contact(spec, SETTINGS))
    status = claimant_status(record, candidate, decide([candidate], 10)[record.ref], CREATED)
    assert status["claims"] == [] and status["eligibleSince"] is None


def test_tenure_records_are_the_recorded_times_only() -> None:
    status = {
        "claims": [{"key": "email", "value": "a@example.com", "since": "2026-01-01T00:00:00Z"},
                   {"key": "mobile", "value": "+8613800000000"}],  # no time: not a record
        "eligibleSince": "2026-01-02T00:00:00.5Z",
        "conditions": [],
    }
    assert tenure_records(status) == {
        ("email", "a@example.com", "2026-01-01T00:00:00.000000Z"),
        ("eligibleSince", "", "2026-01-02T00:00:00.500000Z"),
    }
    assert tenure_records({}) == set()

