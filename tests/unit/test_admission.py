"""The admission decision: refusals with codes and messages, and the update ratchet."""

from __future__ import annotations

from alert_contacts.domain.admission import admit_claimant
from alert_contacts.domain.types import Candidate, Claim, ObjectRef, Problem, Reason, Verdict

ALICE = ObjectRef("Contact", "team-a", "alice")
BOB = ObjectRef("Contact", "team-b", "bob")
EMAIL = Claim("email", "alice@example.com")
MOBILE = Claim("mobile", "+8613800138000")


def valid(*claims: Claim) -> Verdict:
    return Verdict(claims=claims)


def invalid(field: str, value: str) -> Verdict:
    return Verdict(problems=(Problem(field, value, "not valid"),), reason=Reason.INVALID_SPEC)


def test_create_refused_with_the_owner_named() -> None:
    owner = Candidate(BOB, "2026-01-01T00:00:00Z", valid(EMAIL))
    result = admit_claimant(valid(EMAIL), None, ALICE, None, [owner], quota=100)
    assert (result.code, result.reason) == (409, Reason.DUPLICATE_EMAIL)
    assert result.message == "email alice@example.com is already used by Contact team-b/bob"


def test_create_refused_when_the_quota_is_full_but_updates_are_not() -> None:
    full = [Candidate(ObjectRef("Contact", "t", f"c{i}"), "2026-01-01T00:00:00Z",
                      valid(Claim("email", f"c{i}@example.com"))) for i in range(3)]
    created = admit_claimant(valid(EMAIL), None, ALICE, None, full, quota=3)
    assert created.code == 403 and "quota of 3" in created.message
    updated = admit_claimant(valid(EMAIL), valid(EMAIL), ALICE, "2026-01-02T00:00:00Z", full, 3)
    assert updated.allowed


def test_invalid_create_is_422_naming_field_and_value() -> None:
    result = admit_claimant(invalid("spec.email", "a@@b"), None, ALICE, None, [], 100)
    assert result.code == 422 and result.message == "spec.email 'a@@b': not valid"


def test_a_loser_can_still_be_edited_but_not_given_a_new_taken_key() -> None:
    owner = Candidate(BOB, "2026-01-01T00:00:00Z", valid(EMAIL, MOBILE))
    loser_created = "2026-01-02T00:00:00Z"
    # displayName edit: same claims as before -> allowed, with a warning naming the owner
    same = admit_claimant(valid(EMAIL), valid(EMAIL), ALICE, loser_created, [owner], 100)
    assert same.allowed
    assert same.warnings == ("email alice@example.com is already used by Contact team-b/bob; "
                             "this object stays not Ready until that changes",)
    # adding the owner's mobile is a new claim on a taken key -> refused
    more = admit_claimant(valid(EMAIL, MOBILE), valid(EMAIL), ALICE, loser_created, [owner], 100)
    assert more.code == 409 and more.reason == Reason.DUPLICATE_MOBILE


def test_an_invalid_object_can_be_edited_but_not_made_invalid_in_a_new_way() -> None:
    old = invalid("spec.mobile", "12345")
    assert admit_claimant(old, old, ALICE, "2026-01-01T00:00:00Z", [], 100).allowed
    worse = invalid("spec.mobile", "999")
    assert admit_claimant(worse, old, ALICE, "2026-01-01T00:00:00Z", [], 100).code == 422
    from_valid = admit_claimant(old, valid(EMAIL), ALICE, "2026-01-01T00:00:00Z", [], 100)
    assert from_valid.code == 422


def test_an_older_object_taking_a_key_is_warned_about_the_one_it_displaces() -> None:
    younger = Candidate(BOB, "2026-01-05T00:00:00Z", valid(EMAIL))
    result = admit_claimant(valid(EMAIL), valid(), ALICE, "2026-01-01T00:00:00Z", [younger], 100)
    assert result.allowed
    assert result.warnings == ("email alice@example.com is used by Contact team-b/bob, created "
                               "later: this older object takes it over and that one becomes "
                               "not Ready",)


def test_missing_secret_is_admitted_with_a_warning() -> None:
    verdict = Verdict(problems=(Problem("spec.webhook.secretRef", None, "Secret 'b' not found"),),
                      reason=Reason.SECRET_NOT_FOUND)
    result = admit_claimant(verdict, None, ALICE, None, [], 100)
    assert result.allowed and "not Ready until it exists" in result.warnings[0]


def test_own_entry_is_ignored() -> None:
    me = Candidate(ALICE, "2026-01-01T00:00:00Z", valid(EMAIL))
    assert admit_claimant(valid(EMAIL), valid(EMAIL), ALICE, me.created, [me], 1).allowed


def test_fixing_an_old_object_warns_whom_it_pushes_out_of_a_full_quota() -> None:
    late = Candidate(BOB, "2026-01-05T00:00:00Z", valid(Claim("email", "bob@example.com")))
    fixed = admit_claimant(valid(EMAIL), invalid("spec.email", "a@@b"), ALICE,
                           "2026-01-01T00:00:00Z", [late], quota=1)
    assert fixed.allowed
    assert fixed.warnings == ("the quota of 1 is full and this object was created before "
                              "Contact team-b/bob, which becomes QuotaExceeded",)
    early = Candidate(BOB, "2025-12-01T00:00:00Z", valid(Claim("email", "bob@example.com")))
    held = admit_claimant(valid(EMAIL), invalid("spec.email", "a@@b"), ALICE,
                          "2026-01-01T00:00:00Z", [early], quota=1)
    assert held.warnings == ("the quota of 1 is full: this object stays QuotaExceeded until "
                             "room frees up",)
    roomy = admit_claimant(valid(EMAIL), invalid("spec.email", "a@@b"), ALICE,
                           "2026-01-01T00:00:00Z", [late], quota=2)
    assert roomy.warnings == ()
