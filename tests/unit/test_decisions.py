"""Uniqueness and quota ordering: examples, message tables and properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from alert_contacts.domain.decisions import (
    Decision,
    claim_owners,
    decide,
    owner_of,
    sort_key,
)
from alert_contacts.domain.types import Candidate, Claim, ObjectRef, Problem, Reason, Verdict

TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
MOBILE = Claim("mobile", "+8613800138000")
EMAIL = Claim("email", "alice@example.com")
WEBHOOK = Claim("webhook", TOKEN)


def contact(
    name: str,
    created: str,
    *claims: Claim,
    namespace: str = "team-a",
    problems: tuple[Problem, ...] = (),
    reason: Reason = Reason.ACCEPTED,
) -> Candidate:
    kind = "DingTalkBot" if any(c.kind == "webhook" for c in claims) else "Contact"
    if problems and reason is Reason.ACCEPTED:
        reason = Reason.INVALID_SPEC
    normalized: dict[str, str] = {c.kind: c.value for c in claims if c.kind != "webhook"}
    verdict = Verdict(
        problems=problems,
        reason=reason,
        claims=() if problems else claims,
        normalized={} if problems else normalized,
    )
    return Candidate(ObjectRef(kind, namespace, name), created, verdict)


def ts(second: int) -> str:
    return f"2024-01-01T00:{second // 60:02d}:{second % 60:02d}Z"


BAD_EMAIL = (Problem("spec.email", "not-an-email", "is not a valid email address"),)


# --- examples ---------------------------------------------------------------


def test_earliest_claimant_owns_and_later_is_duplicate() -> None:
    first = contact("alice", ts(1), MOBILE, EMAIL)
    second = contact("alice2", ts(2), EMAIL, namespace="team-b")
    decisions = decide([second, first], quota=100)

    assert decisions[first.ref].ready
    assert decisions[first.ref].reason is Reason.ACCEPTED
    lost = decisions[second.ref]
    assert (lost.valid, lost.unique, lost.within_quota, lost.ready) == (True, False, None, False)
    assert lost.reason is Reason.DUPLICATE_EMAIL
    assert lost.message == "email alice@example.com is already used by Contact team-a/alice"


def test_same_second_ties_break_by_namespace_then_name() -> None:
    b = contact("a", ts(5), EMAIL, namespace="b")
    a_z = contact("z", ts(5), EMAIL, namespace="a")
    a_y = contact("y", ts(5), EMAIL, namespace="a")
    decisions = decide([b, a_z, a_y], quota=100)
    assert [r.name for r, d in decisions.items() if d.unique] == ["y"]
    assert owner_of(EMAIL, [b, a_z, a_y]) == a_y


def test_invalid_candidate_is_not_evaluated_further() -> None:
    bad = contact("bad", ts(0), EMAIL, problems=BAD_EMAIL)
    decision = decide([bad], quota=1)[bad.ref]
    assert decision == Decision(
        valid=False,
        unique=None,
        within_quota=None,
        reason=Reason.INVALID_SPEC,
        message="spec.email 'not-an-email': is not a valid email address",
    )


def test_secret_not_found_reason_is_kept() -> None:
    problem = (Problem("spec.webhook.secretRef", "oncall-bot", "Secret not found"),)
    bot = contact("bot", ts(0), problems=problem, reason=Reason.SECRET_NOT_FOUND)
    assert decide([bot], quota=1)[bot.ref].reason is Reason.SECRET_NOT_FOUND


def test_mobile_blocks_before_email_and_message_names_both() -> None:
    owner_m = contact("m", ts(1), MOBILE)
    owner_e = contact("e", ts(2), EMAIL)
    late = contact("late", ts(3), EMAIL, MOBILE)
    decision = decide([late, owner_e, owner_m], quota=10)[late.ref]
    assert decision.reason is Reason.DUPLICATE_MOBILE
    assert decision.message == (
        "mobile +8613800138000 is already used by Contact team-a/m; "
        "email alice@example.com is already used by Contact team-a/e"
    )


def test_quota_counts_contacts_and_bots_together_in_creation_order() -> None:
    objs = [
        contact("c1", ts(1), Claim("email", "1@x.io")),
        contact("b2", ts(2), Claim("webhook", "t2" * 10)),
        contact("c3", ts(3), Claim("email", "3@x.io")),
        contact("c4", ts(4), Claim("email", "4@x.io")),
    ]
    decisions = decide(reversed(objs), quota=2)
    assert [decisions[o.ref].within_quota for o in objs] == [True, True, False, False]
    assert [decisions[o.ref].position for o in objs] == [1, 2, 3, 4]
    last = decisions[objs[3].ref]
    assert last.reason is Reason.QUOTA_EXCEEDED
    assert last.message == (
        "quota of 2 contacts and DingTalk bots is full (2 in use); this object gets the next "
        "free slot after those that became valid and unique before it"
    )
    # The same text for every waiting object: a slot freeing up rewrites one object only.
    assert decisions[objs[2].ref].message == last.message


def test_duplicates_and_invalid_objects_do_not_use_quota() -> None:
    first = contact("first", ts(1), EMAIL)
    dup = contact("dup", ts(2), EMAIL)
    bad = contact("bad", ts(3), problems=BAD_EMAIL)
    last = contact("last", ts(4), MOBILE)
    decisions = decide([first, dup, bad, last], quota=2)
    assert decisions[last.ref].within_quota is True
    assert decisions[last.ref].position == 2


def test_quota_zero_refuses_everything() -> None:
    only = contact("only", ts(1), EMAIL)
    decision = decide([only], quota=0)[only.ref]
    assert decision.reason is Reason.QUOTA_EXCEEDED
    assert "quota of 0 contacts and DingTalk bots is full (0 in use)" in decision.message


def test_contact_and_bot_with_same_name_and_second_have_a_stable_order() -> None:
    c = contact("same", ts(1), EMAIL)
    b = contact("same", ts(1), WEBHOOK)
    assert decide([c, b], quota=1) == decide([b, c], quota=1)
    assert sort_key(c) < sort_key(b)


def test_normalized_passes_through() -> None:
    c = contact("alice", ts(1), MOBILE, EMAIL)
    assert decide([c], 1)[c.ref].normalized == {
        "mobile": "+8613800138000",
        "email": "alice@example.com",
    }


# --- messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "owner", "reason", "message"),
    [
        (
            Claim("mobile", "+8613800138000"),
            ObjectRef("Contact", "team-b", "bob"),
            Reason.DUPLICATE_MOBILE,
            "mobile +8613800138000 is already used by Contact team-b/bob",
        ),
        (
            Claim("email", "alice@example.com"),
            ObjectRef("Contact", "team-b", "alice2"),
            Reason.DUPLICATE_EMAIL,
            "email alice@example.com is already used by Contact team-b/alice2",
        ),
        (
            WEBHOOK,
            ObjectRef("DingTalkBot", "ops", "oncall"),
            Reason.DUPLICATE_WEBHOOK,
            "webhook access token (ending …abcd) is already used by DingTalkBot ops/oncall",
        ),
        (
            Claim("webhook", "shorttok"),
            ObjectRef("DingTalkBot", "ops", "oncall"),
            Reason.DUPLICATE_WEBHOOK,
            "webhook access token is already used by DingTalkBot ops/oncall",
        ),
    ],
)
def test_duplicate_messages(claim: Claim, owner: ObjectRef, reason: Reason, message: str) -> None:
    first = Candidate(owner, ts(1), Verdict(claims=(claim,)))
    kind = "DingTalkBot" if claim.kind == "webhook" else "Contact"
    late = Candidate(ObjectRef(kind, "team-a", "late"), ts(2), Verdict(claims=(claim,)))

    decision = decide([first, late], quota=10)[late.ref]
    assert (decision.reason, decision.message) == (reason, message)


def test_webhook_token_never_appears_in_messages() -> None:
    first = contact("first", ts(1), WEBHOOK)
    late = contact("late", ts(2), WEBHOOK)
    decision = decide([first, late], quota=10)[late.ref]
    assert TOKEN not in decision.message and "…abcd" in decision.message


# --- tenure: the longest continuous holder wins, not the oldest object -----------


def test_a_younger_claimant_holding_a_key_keeps_it_against_an_older_object_edited_onto_it() -> None:
    holder = contact("young", ts(50), EMAIL)
    # The old object started claiming the email only now (pending: after everyone).
    edited = Candidate(ObjectRef("Contact", "team-a", "old"), ts(1), Verdict(claims=(EMAIL,)),
                       claimed_since={EMAIL: "~"})
    decisions = decide([edited, holder], quota=10)
    assert decisions[holder.ref].ready
    assert decisions[edited.ref].message == (
        "email alice@example.com is already used by Contact team-a/young")


def test_recorded_claim_times_order_claimants_before_creation_time() -> None:
    a = Candidate(ObjectRef("Contact", "t", "a"), ts(1), Verdict(claims=(EMAIL,)),
                  claimed_since={EMAIL: "2024-01-01T00:09:00.000000Z"})
    b = Candidate(ObjectRef("Contact", "t", "b"), ts(5), Verdict(claims=(EMAIL,)),
                  claimed_since={EMAIL: "2024-01-01T00:08:59.500000Z"})
    assert owner_of(EMAIL, [a, b]) == b


def test_quota_follows_the_time_objects_became_eligible() -> None:
    # The bot is younger but eligible since long ago; the old contact just got fixed.
    bot = Candidate(ObjectRef("DingTalkBot", "t", "bot"), ts(30), Verdict(claims=(WEBHOOK,)),
                    eligible_since=ts(31))
    fixed = Candidate(ObjectRef("Contact", "t", "old"), ts(1), Verdict(claims=(EMAIL,)),
                      eligible_since="~")
    decisions = decide([fixed, bot], quota=1)
    assert decisions[bot.ref].within_quota is True
    assert decisions[fixed.ref].reason is Reason.QUOTA_EXCEEDED
    assert (decisions[bot.ref].position, decisions[fixed.ref].position) == (1, 2)


def test_pending_claims_order_among_themselves_by_creation_then_name() -> None:
    late = Candidate(ObjectRef("Contact", "t", "a"), ts(9), Verdict(claims=(EMAIL,)),
                     claimed_since={EMAIL: "~"})
    early = Candidate(ObjectRef("Contact", "t", "z"), ts(2), Verdict(claims=(EMAIL,)),
                      claimed_since={EMAIL: "~"})
    assert owner_of(EMAIL, [late, early]) == early


def test_decide_scales_to_many_objects() -> None:
    rng = random.Random(7)
    candidates = [
        contact(
            f"c{i}",
            ts(rng.randrange(3600)),
            Claim("email", f"{rng.randrange(15000)}@x.io"),
            Claim("mobile", f"+86{rng.randrange(15000)}"),
            namespace=f"ns{i % 50}",
        )
        for i in range(20000)
    ]
    decisions = decide(candidates, quota=100)
    assert len(decisions) == 20000
    assert sum(1 for d in decisions.values() if d.within_quota) == 100


# --- properties ---------------------------------------------------------------

_claims = st.one_of(
    st.builds(Claim, st.just("mobile"), st.sampled_from(["+861", "+862", "+863"])),
    st.builds(Claim, st.just("email"), st.sampled_from(["a@x", "b@x", "c@x"])),
    st.builds(Claim, st.just("webhook"), st.sampled_from(["tok1", "tok2", "tok3"])),
)


@st.composite
def _candidate(draw: st.DrawFn) -> Candidate:
    claims = tuple(draw(st.lists(_claims, min_size=0, max_size=3, unique=True)))
    valid = draw(st.integers(0, 3)) > 0
    kind = draw(st.sampled_from(["Contact", "DingTalkBot"]))
    ref = ObjectRef(kind, draw(st.sampled_from(["a", "b"])), draw(st.sampled_from("pqrstu")))
    created = ts(draw(st.integers(0, 4)))
    problems = () if valid else BAD_EMAIL
    times = st.sampled_from([ts(0), ts(2), ts(4), "~"])
    since = {c: draw(times) for c in claims if draw(st.booleans())}
    eligible = draw(st.one_of(st.none(), times))
    return Candidate(ref, created, Verdict(problems=problems, claims=claims), since, eligible)


_candidates = st.lists(_candidate(), max_size=14, unique_by=lambda c: c.ref)
_quota = st.integers(0, 6)


def _claimants(claim: Claim, candidates: list[Candidate]) -> list[Candidate]:
    return sorted(
        (c for c in candidates if c.verdict.valid and claim in c.verdict.claims),
        key=lambda c: c.claim_key(claim),
    )


@given(_candidates, _quota, st.randoms())
def test_result_does_not_depend_on_input_order(
    candidates: list[Candidate], quota: int, rnd: random.Random
) -> None:
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    assert decide(shuffled, quota) == decide(candidates, quota)


@given(_candidates, _quota)
def test_each_claim_has_exactly_one_owner_the_earliest_valid_claimant(
    candidates: list[Candidate], quota: int
) -> None:
    owners = claim_owners(candidates)
    decisions = decide(candidates, quota)
    all_claims = {claim for c in candidates for claim in c.verdict.claims}
    for claim in all_claims:
        claimants = _claimants(claim, candidates)
        if not claimants:
            assert claim not in owners
            continue
        assert owners[claim] == claimants[0] == owner_of(claim, candidates)
        unique_claimants = [c for c in claimants if decisions[c.ref].unique]
        assert unique_claimants in ([], [claimants[0]])
        for loser in claimants[1:]:
            assert decisions[loser.ref].unique is False
    for c in candidates:
        d = decisions[c.ref]
        if c.verdict.valid:
            assert d.unique == all(owners[claim] == c for claim in c.verdict.claims)


@given(_candidates, _quota)
def test_never_more_than_quota_within_quota(candidates: list[Candidate], quota: int) -> None:
    decisions = decide(candidates, quota)
    eligible = sorted(
        (c for c in candidates if decisions[c.ref].valid and decisions[c.ref].unique),
        key=sort_key,
    )
    within = [c for c in eligible if decisions[c.ref].within_quota]
    assert len(within) == min(quota, len(eligible))
    assert within == eligible[:quota]
    assert all(decisions[c.ref].reason is Reason.QUOTA_EXCEEDED for c in eligible[quota:])
    assert sum(d.ready for d in decisions.values()) == len(within)


@given(_candidates, _quota)
def test_removing_an_owner_promotes_exactly_the_next_claimant(
    candidates: list[Candidate], quota: int
) -> None:
    contested = [claim for claim in {claim for c in candidates for claim in c.verdict.claims}
                 if len(_claimants(claim, candidates)) >= 2]
    assume(contested)  # every example removes an owner that has a successor
    for claim in contested:
        claimants = _claimants(claim, candidates)
        owner, successor = claimants[0], claimants[1]
        remaining = [c for c in candidates if c.ref != owner.ref]
        owners_after = claim_owners(remaining)
        assert owners_after[claim] == successor
        after = decide(remaining, quota)
        owns_others = all(owners_after[k] == successor for k in successor.verdict.claims)
        assert after[successor.ref].unique is owns_others
        for other in claimants[2:]:
            assert after[other.ref].unique is False


@given(_candidates, _quota)
def test_invalid_candidate_never_owns_nor_counts_for_quota(
    candidates: list[Candidate], quota: int
) -> None:
    decisions = decide(candidates, quota)
    invalid = [c for c in candidates if not c.verdict.valid]
    owners = claim_owners(candidates)
    assert not any(owner in invalid for owner in owners.values())
    for c in invalid:
        d = decisions[c.ref]
        assert (d.valid, d.unique, d.within_quota, d.ready) == (False, None, None, False)
    valid_only = [c for c in candidates if c.verdict.valid]
    without_invalid = decide(valid_only, quota)
    assert without_invalid == {r: d for r, d in decisions.items() if d.valid}
