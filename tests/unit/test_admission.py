"""The admission decision: refusals with codes and messages, the update ratchet, and
warnings that name the object an admitted edit changes (asked of the decision engine)."""

from __future__ import annotations

from alert_contacts.domain.admission import admit_claimant
from alert_contacts.domain.engine import DecisionEngine, engine_of
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import Claim, ObjectRef, Problem, Reason, Verdict
from alert_contacts.settings import Settings

ALICE = ObjectRef("Contact", "team-a", "alice")
BOB = ObjectRef("Contact", "team-b", "bob")
EMAIL = Claim("email", "alice@example.com")
MOBILE = Claim("mobile", "+8613800138000")


def valid(*claims: Claim) -> Verdict:
    return Verdict(claims=claims)


def invalid(field: str, value: str) -> Verdict:
    return Verdict(problems=(Problem(field, value, "not valid"),), reason=Reason.INVALID_SPEC)


def record(ref: ObjectRef, created: str, verdict: Verdict,
           status: dict[str, object] | None = None) -> ObjectRecord:
    return ObjectRecord(ref, f"uid-{ref.name}", created, 1, {}, status or {}, verdict)


def engine(*records: ObjectRecord, quota: int = 100) -> DecisionEngine:
    return engine_of(Settings(quota=quota), records)


def numbered(count: int, created: str = "2026-01-01T00:00:00Z") -> list[ObjectRecord]:
    return [record(ObjectRef("Contact", "t", f"c{i}"), created,
                   valid(Claim("email", f"c{i}@example.com"))) for i in range(count)]


def test_create_refused_with_the_owner_named() -> None:
    view = engine(record(BOB, "2026-01-01T00:00:00Z", valid(EMAIL)))
    result = admit_claimant(valid(EMAIL), None, ALICE, view, quota=100)
    assert (result.code, result.reason) == (409, Reason.DUPLICATE_EMAIL)
    assert result.message == "email alice@example.com is already used by Contact team-b/bob"


def test_create_refused_when_the_quota_is_full_but_updates_of_holders_are_not() -> None:
    full = numbered(3)
    view = engine(*full, quota=3)
    created = admit_claimant(valid(EMAIL), None, ALICE, view, quota=3)
    assert created.code == 403 and "quota of 3" in created.message
    holder = full[0].ref
    kept = valid(Claim("email", "c0@example.com"))
    assert admit_claimant(kept, kept, holder, view, 3).allowed


def test_a_ready_object_moving_to_a_free_key_while_the_quota_is_full_passes_silently() -> None:
    full = numbered(2)
    view = engine(*full, quota=2)
    moved = admit_claimant(valid(Claim("email", "new@example.com")),
                           valid(Claim("email", "c0@example.com")), full[0].ref, view, 2)
    assert moved.allowed and moved.warnings == ()


def test_invalid_create_is_422_naming_field_and_value() -> None:
    result = admit_claimant(invalid("spec.email", "a@@b"), None, ALICE, engine(), 100)
    assert result.code == 422 and result.message == "spec.email 'a@@b': not valid"


def test_a_loser_can_still_be_edited_but_not_given_a_new_taken_key() -> None:
    view = engine(record(BOB, "2026-01-01T00:00:00Z", valid(EMAIL, MOBILE)),
                  record(ALICE, "2026-01-02T00:00:00Z", valid(EMAIL)))
    # displayName edit: same claims as before -> allowed, with a warning naming the owner
    same = admit_claimant(valid(EMAIL), valid(EMAIL), ALICE, view, 100)
    assert same.allowed
    assert same.warnings == ("email alice@example.com is already used by Contact team-b/bob; "
                             "this object stays not Ready until that changes",)
    # adding the owner's mobile is a new claim on a taken key -> refused
    more = admit_claimant(valid(EMAIL, MOBILE), valid(EMAIL), ALICE, view, 100)
    assert more.code == 409 and more.reason == Reason.DUPLICATE_MOBILE


def test_an_invalid_object_can_be_edited_but_not_made_invalid_in_a_new_way() -> None:
    old = invalid("spec.mobile", "12345")
    view = engine(record(ALICE, "2026-01-01T00:00:00Z", old))
    assert admit_claimant(old, old, ALICE, view, 100).allowed
    worse = invalid("spec.mobile", "999")
    assert admit_claimant(worse, old, ALICE, view, 100).code == 422
    assert admit_claimant(old, valid(EMAIL), ALICE, view, 100).code == 422


def test_an_older_object_edited_onto_a_younger_ones_key_is_refused_naming_it() -> None:
    view = engine(record(BOB, "2026-01-05T00:00:00Z", valid(EMAIL)),
                  record(ALICE, "2026-01-01T00:00:00Z", valid(MOBILE)))
    result = admit_claimant(valid(MOBILE, EMAIL), valid(MOBILE), ALICE, view, 100)
    assert (result.code, result.reason) == (409, Reason.DUPLICATE_EMAIL)
    assert result.message == "email alice@example.com is already used by Contact team-b/bob"


def test_fixing_an_invalid_object_needs_a_free_slot() -> None:
    broken = record(ALICE, "2025-01-01T00:00:00Z", invalid("spec.email", "a@@b"))
    late = record(BOB, "2026-01-05T00:00:00Z", valid(Claim("email", "bob@example.com")))
    full = admit_claimant(valid(EMAIL), broken.verdict, ALICE, engine(broken, late, quota=1), 1)
    assert (full.code, full.reason) == (403, Reason.QUOTA_EXCEEDED)
    assert full.message.startswith("quota of 1 contacts and DingTalk bots is full (1 in use)")
    roomy = admit_claimant(valid(EMAIL), broken.verdict, ALICE, engine(broken, late, quota=2), 2)
    assert roomy.allowed and roomy.warnings == ()


def test_an_eligible_object_waiting_for_quota_can_be_edited() -> None:
    first, waiting = numbered(2)
    view = engine(first, waiting, quota=1)
    kept = waiting.verdict
    assert kept is not None
    result = admit_claimant(kept, kept, waiting.ref, view, 1)
    assert result.allowed and result.warnings == ()


def test_dropping_a_key_names_the_claimant_that_becomes_its_owner() -> None:
    view = engine(record(ALICE, "2026-01-01T00:00:00Z", valid(EMAIL, MOBILE)),
                  record(BOB, "2026-01-02T00:00:00Z", valid(EMAIL)))
    result = admit_claimant(valid(MOBILE), valid(EMAIL, MOBILE), ALICE, view, 100)
    assert result.allowed
    assert result.warnings == ("email alice@example.com is no longer claimed by this object: "
                               "Contact team-b/bob, which also claims it, becomes its owner",)


def test_missing_secret_is_admitted_with_a_warning_naming_who_gets_the_slot() -> None:
    verdict = Verdict(problems=(Problem("spec.webhook.secretRef", None, "Secret 'b' not found"),),
                      reason=Reason.SECRET_NOT_FOUND)
    created = admit_claimant(verdict, None, ALICE, engine(), 100)
    assert created.allowed and "not Ready until it exists" in created.warnings[0]
    holder, waiting = numbered(2)
    view = engine(holder, waiting, quota=1)
    assert holder.verdict is not None
    moved = admit_claimant(verdict, holder.verdict, holder.ref, view, 1)
    assert moved.allowed
    assert moved.warnings[1] == ("this object gives up its quota slot: Contact t/c1, next in "
                                 "line, becomes WithinQuota")


def test_own_entry_is_ignored() -> None:
    view = engine(record(ALICE, "2026-01-01T00:00:00Z", valid(EMAIL)), quota=1)
    assert admit_claimant(valid(EMAIL), valid(EMAIL), ALICE, view, 1).allowed


def test_a_refusal_lists_every_taken_key_mobile_first_as_status_does() -> None:
    view = engine(record(BOB, "2026-01-01T00:00:00Z", valid(EMAIL)),
                  record(ObjectRef("Contact", "t", "mo"), "2026-01-01T00:00:00Z", valid(MOBILE)))
    result = admit_claimant(valid(EMAIL, MOBILE), None, ALICE, view, 100)
    assert (result.code, result.reason) == (409, Reason.DUPLICATE_MOBILE)
    assert result.message == ("mobile +8613800138000 is already used by Contact t/mo; "
                              "email alice@example.com is already used by Contact team-b/bob")
