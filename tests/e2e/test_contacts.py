"""Contacts through the API as users drive it: every rule on create and on edit,
normalisation, ownership by creation order, printer columns, batch delete, Events.

Keys (mobile numbers, emails) are unique cluster-wide, so every test draws
fresh ones and no test depends on another's leftovers.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    GROUP,
    VERSION,
    Cluster,
    Operator,
    condition,
    events_for,
    manifest,
    ready_reason,
    refusal,
    unique_email,
    unique_mobile,
    wait_for_condition,
    wait_until,
    without_admission,
)


def ready_contact(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any],
                  labels: dict[str, str] | None = None) -> dict[str, Any]:
    cluster.create("Contact", namespace, name, spec, labels)
    return wait_for_condition(cluster, "Contact", namespace, name, "Ready", "True",
                              reason="Accepted")


def make_duplicate(
    cluster: Cluster, operator: Operator, namespace: str, log_path: Path
) -> tuple[str, str]:
    """Make ``younger`` a duplicate of ``elder``: admission refuses every request that
    would (a create or an edit onto a key another contact holds), so ``younger`` is
    created while the webhook is not in force, as objects racing past it are.

    Returns (the email elder owns, an email of elder's own to move to).
    """
    email = unique_email("taken")
    ready_contact(cluster, namespace, "elder", {"email": email})
    with without_admission(operator, log_path):
        cluster.create("Contact", namespace, "younger", {"email": email})
        wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "False",
                           reason="DuplicateEmail")
    return email, unique_email("elder")


# ------------------------------------------------------------------ validity


@pytest.mark.parametrize(("mobile", "why"), [
    ("010 6552 9988", "this is a landline (fixed-line) number, not a mobile number"),
    ("12345", "not a valid phone number in region CN"),
    ("138-0013-800O", "contains letters"),
    ("+999 138 0013 8000", "the country code is not valid"),
])
def test_a_mobile_that_cannot_receive_sms_is_refused_on_create(
    cluster: Cluster, operator: Operator, namespace: str, mobile: str, why: str
) -> None:
    status, message = refusal(
        lambda: cluster.create("Contact", namespace, "bad", {"mobile": mobile})
    )
    assert status == 422, message
    assert f"spec.mobile {mobile!r}: {why}" in message
    assert "admission webhook" in message
    assert cluster.get("Contact", namespace, "bad") is None


def test_an_edit_to_an_invalid_mobile_or_email_is_refused_and_the_contact_is_kept(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    digits, e164 = unique_mobile()
    email = unique_email("alice")
    ready_contact(cluster, namespace, "alice", {"mobile": digits, "email": email})

    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "alice", {"mobile": "010 6552 9988"}))
    assert status == 422
    assert "spec.mobile '010 6552 9988': this is a landline" in message

    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "alice", {"email": "alice@"}))
    assert status == 422
    assert "spec.email 'alice@': There must be something after the @-sign." in message

    obj = cluster.get("Contact", namespace, "alice")
    assert obj is not None
    assert obj["spec"]["mobile"] == digits and obj["spec"]["email"] == email
    assert obj["metadata"]["generation"] == 1
    assert obj["status"]["normalized"] == {"mobile": e164, "email": email}
    assert (condition(obj, "Ready") or {}).get("status") == "True"


def test_removing_the_only_way_to_reach_a_contact_is_refused_by_the_schema(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    email = unique_email("only")
    ready_contact(cluster, namespace, "only-email", {"email": email})
    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "only-email", {"email": None}))
    assert status == 422
    assert "a contact needs spec.mobile, spec.email, or both" in message
    obj = cluster.get("Contact", namespace, "only-email")
    assert obj is not None and obj["spec"]["email"] == email


def test_a_display_name_over_64_characters_is_refused_by_the_schema(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest("Contact",
        namespace, "long", {"email": unique_email("long"), "displayName": "x" * 65}))
    assert result.returncode != 0
    assert "spec.displayName" in result.stderr and "64" in result.stderr
    assert cluster.get("Contact", namespace, "long") is None


def test_an_unknown_spec_field_is_refused_by_the_schema(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    spec = {"email": unique_email("pager"), "pager": "555-0100"}
    result = cluster.kubectl("apply", "-f", "-", check=False,
                             input=manifest("Contact", namespace, "pager", spec))
    assert result.returncode != 0
    assert 'unknown field "spec.pager"' in result.stderr
    # A program asking for strict field validation is refused the same way.
    status, message = refusal(lambda: cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "contacts",
        json.loads(manifest("Contact", namespace, "pager", spec)),
        field_validation="Strict"))
    assert status in (400, 422) and 'unknown field "spec.pager"' in message
    assert cluster.get("Contact", namespace, "pager") is None


# ------------------------------------------------------------------ uniqueness


def test_a_duplicate_email_is_refused_naming_the_owner_case_insensitively(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    email = unique_email("dup")
    local, domain = email.split("@")
    ready_contact(cluster, namespace, "alice", {"email": f"{local.title()}@{domain.upper()}"})
    status, message = refusal(lambda: cluster.create(
        "Contact", namespace, "bob", {"email": f"{local.upper()}@{domain}"}))
    assert status == 409, message
    assert f"email {email} is already used by Contact {namespace}/alice" in message
    assert cluster.get("Contact", namespace, "bob") is None


def test_a_duplicate_mobile_is_refused_after_normalisation(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    digits, e164 = unique_mobile()
    formatted = f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}"  # +86 138-0013-8000
    obj = ready_contact(cluster, namespace, "alice", {"mobile": formatted})
    assert obj["status"]["normalized"] == {"mobile": e164}
    for name, written in (("bob", digits), ("carol", f"0086 {digits}"), ("dave", f"({digits})")):
        status, message = refusal(
            lambda n=name, w=written: cluster.create("Contact", namespace, n, {"mobile": w})
        )
        assert status == 409, (written, message)
        assert f"mobile {e164} is already used by Contact {namespace}/alice" in message
        assert cluster.get("Contact", namespace, name) is None


def test_uniqueness_is_cluster_wide_across_namespaces(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    elsewhere = f"elsewhere-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": elsewhere}})
    email = unique_email("shared")
    try:
        ready_contact(cluster, elsewhere, "alice", {"email": email})
        status, message = refusal(lambda: cluster.create(
            "Contact", namespace, "alice", {"email": email}))
        assert status == 409
        assert f"email {email} is already used by Contact {elsewhere}/alice" in message
    finally:
        cluster.delete("Contact", elsewhere, "alice")


def test_a_refusal_names_every_key_taken_and_each_owner(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    digits, e164 = unique_mobile()
    email = unique_email("both")
    ready_contact(cluster, namespace, "alice", {"mobile": digits})
    ready_contact(cluster, namespace, "bob", {"email": email})
    status, message = refusal(lambda: cluster.create(
        "Contact", namespace, "carol", {"mobile": f"+86 {digits}", "email": email}))
    assert status == 409
    assert message.endswith(f"mobile {e164} is already used by Contact {namespace}/alice;"
                            f" email {email} is already used by Contact {namespace}/bob")


def test_an_edit_into_an_older_contacts_email_is_refused(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    first, second = unique_email("first"), unique_email("second")
    ready_contact(cluster, namespace, "alice", {"email": first})
    ready_contact(cluster, namespace, "bob", {"email": second})
    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "bob", {"email": first.upper()}))
    assert status == 409
    assert f"email {first} is already used by Contact {namespace}/alice" in message
    bob = cluster.get("Contact", namespace, "bob")
    assert bob is not None and bob["spec"]["email"] == second
    assert (condition(bob, "Ready") or {}).get("status") == "True"


def test_the_owner_may_edit_its_other_fields(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    digits, _ = unique_mobile()
    ready_contact(cluster, namespace, "alice", {"mobile": digits})
    cluster.patch_spec("Contact", namespace, "alice",
                       {"displayName": "Alice Wang", "systemNotifications": True})
    obj = wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
    assert obj["metadata"]["generation"] == 2
    assert (condition(obj, "Ready") or {})["observedGeneration"] == 2


def test_editing_an_email_frees_the_old_one(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    old, new = unique_email("old"), unique_email("new")
    ready_contact(cluster, namespace, "alice", {"email": old})
    cluster.patch_spec("Contact", namespace, "alice", {"email": new})
    obj = wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")
    assert obj["status"]["normalized"] == {"email": new}

    # The operator has seen the edit (it wrote the status above): the old
    # address is free for another contact, the new one is taken.
    ready_contact(cluster, namespace, "bob", {"email": old})
    status, message = refusal(lambda: cluster.create(
        "Contact", namespace, "carol", {"email": new}))
    assert status == 409
    assert f"email {new} is already used by Contact {namespace}/alice" in message


def test_a_duplicate_shows_why_and_is_promoted_when_the_holder_moves_on(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email, elder_email = make_duplicate(cluster, operator, namespace, tmp_path / "op.log")

    younger = wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "False",
                                 reason="DuplicateEmail")
    message = f"email {email} is already used by Contact {namespace}/elder"
    assert (condition(younger, "Ready") or {})["message"] == message
    assert (condition(younger, "Valid") or {})["status"] == "True"
    assert (condition(younger, "Unique") or {}) | {"lastTransitionTime": None} == {
        "type": "Unique", "status": "False", "reason": "DuplicateEmail", "message": message,
        "observedGeneration": 1, "lastTransitionTime": None,
    }
    assert (condition(younger, "WithinQuota") or {})["status"] == "Unknown"
    stalled = condition(younger, "Stalled")
    assert stalled is not None and stalled["status"] == "True"
    assert stalled["reason"] == "DuplicateEmail"
    wait_for_condition(cluster, "Contact", namespace, "elder", "Ready", "True")

    # The holder moving to another address promotes the next claimant.
    cluster.patch_spec("Contact", namespace, "elder", {"email": elder_email})
    younger = wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "True",
                                 reason="Accepted")
    assert condition(younger, "Stalled") is None


def test_an_older_contact_edited_into_a_younger_ones_email_is_refused(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    email = unique_email("young")
    ready_contact(cluster, namespace, "elder", {"email": unique_email("elder")})
    ready_contact(cluster, namespace, "younger", {"email": email})
    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "elder", {"email": email.upper()}))
    assert status == 409
    assert f"email {email} is already used by Contact {namespace}/younger" in message
    younger = cluster.get("Contact", namespace, "younger")
    assert ready_reason(younger) == ("True", "Accepted")


def test_metadata_only_edits_are_admitted_even_for_a_contact_admission_would_refuse(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email, _ = make_duplicate(cluster, operator, namespace, tmp_path / "op.log")
    # Its spec would be refused now (the email belongs to an older contact), but
    # labels and annotations must stay editable, e.g. to select it for a batch delete.
    cluster.kubectl("label", "contact/younger", "-n", namespace, "team=x")
    cluster.kubectl("annotate", "contact/younger", "-n", namespace, "note=duplicate")
    obj = cluster.get("Contact", namespace, "younger")
    assert obj is not None
    assert obj["metadata"]["labels"] == {"team": "x"}
    assert obj["metadata"]["annotations"]["note"] == "duplicate"
    # A spec edit that keeps the taken email is admitted too (the ratchet: it makes
    # nothing worse), with a warning naming the owner; the contact stays not Ready.
    result = cluster.kubectl("patch", "contact/younger", "-n", namespace, "--type=merge",
                             "-p", '{"spec": {"displayName": "Younger"}}')
    assert f"email {email} is already used by Contact {namespace}/elder" in result.stderr
    wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "False",
                       reason="DuplicateEmail")
    # Claiming another key that another contact owns is refused.
    digits, e164 = unique_mobile()
    cluster.patch_spec("Contact", namespace, "elder", {"mobile": digits})
    wait_for_condition(cluster, "Contact", namespace, "elder", "Ready", "True")
    status, message = refusal(lambda: cluster.patch_spec(
        "Contact", namespace, "younger", {"mobile": digits}))
    assert status == 409
    assert f"mobile {e164} is already used by Contact {namespace}/elder" in message
    # Moving to an address of its own is admitted, and makes it Ready.
    cluster.patch_spec("Contact", namespace, "younger", {"email": unique_email("own")})
    wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "True")


# ------------------------------------------------------------------ kubectl


def _table(output: str) -> list[dict[str, str]]:
    """Rows of kubectl's table output, cut at the header's column starts (cells may be empty)."""
    lines = output.rstrip().splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))\S", lines[0])]
    header = [lines[0][a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: line[a:b].strip()
         for name, a, b in zip(header, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


def test_kubectl_get_shows_readiness_and_the_reason(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email, _ = make_duplicate(cluster, operator, namespace, tmp_path / "op.log")
    digits, e164 = unique_mobile()
    ready_contact(cluster, namespace, "alice", {
        "displayName": "Alice Wang", "mobile": digits, "email": unique_email("alice"),
        "systemNotifications": True,
    })
    rows = {row["NAME"]: row for row in _table(
        cluster.kubectl("get", "contacts", "-n", namespace).stdout)}
    assert list(rows["alice"]) == ["NAME", "DISPLAY NAME", "MOBILE", "EMAIL", "SYSTEM NOTICES",
                                   "READY", "REASON", "AGE"]
    assert rows["alice"]["DISPLAY NAME"] == "Alice Wang"
    assert rows["alice"]["MOBILE"] == e164  # normalised, so two spellings visibly collide
    assert rows["alice"]["SYSTEM NOTICES"] == "true"
    assert (rows["alice"]["READY"], rows["alice"]["REASON"]) == ("True", "Accepted")
    assert (rows["younger"]["READY"], rows["younger"]["REASON"]) == ("False", "DuplicateEmail")
    assert rows["younger"]["EMAIL"] == email
    # The short name and the category reach the same objects.
    names = cluster.kubectl("get", "ct", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(names) == [f"contact.{GROUP}/{n}" for n in ("alice", "elder", "younger")]
    everything = cluster.kubectl("get", "alerting", "-n", namespace, "-o", "name").stdout
    assert f"contact.{GROUP}/alice" in everything


def test_kubectl_delete_with_a_label_selector_deletes_many(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "x"), ("d", "y")):
        cluster.create("Contact", namespace, name, {"email": unique_email(name)}, {"team": team})
    wait_for_condition(cluster, "Contact", namespace, "c", "Ready", "True")
    # kubectl waits for the objects to be gone: no finalizer may hold them.
    result = cluster.kubectl("delete", "contacts", "-l", "team=x", "-n", namespace,
                             "--timeout=20s")
    deleted = sorted(re.findall(r'contact\.\S+ "(\w+)" deleted', result.stdout))
    assert deleted == ["a", "b", "c"]
    assert [o["metadata"]["name"] for o in cluster.list("Contact", namespace)] == ["d"]


def test_events_are_posted_on_ready_transitions(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email, elder_email = make_duplicate(cluster, operator, namespace, tmp_path / "op.log")

    def reasons() -> list[tuple[str, str]]:
        # Events carry whole-second timestamps: compare them as a set of transitions.
        return sorted((e.type, e.reason) for e in events_for(cluster, namespace, "younger"))

    wait_until("an event DuplicateEmail for younger",
               lambda: reasons() == [("Warning", "DuplicateEmail")])
    events = events_for(cluster, namespace, "younger")
    duplicate = next(e for e in events if e.reason == "DuplicateEmail")
    # Events travel further than status: the email is redacted there, kept in status.
    local, domain = email.split("@")
    assert duplicate.message == (
        f"email {local[0]}***@{domain} is already used by Contact {namespace}/elder"
    )
    assert email not in duplicate.message
    assert duplicate.involved_object.kind == "Contact"
    assert duplicate.source.component == "alert-contacts-operator"

    cluster.patch_spec("Contact", namespace, "elder", {"email": elder_email})
    wait_until("an Accepted event for younger", lambda: reasons() == [
        ("Normal", "Accepted"), ("Warning", "DuplicateEmail")])
    # As users read them:
    shown = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                            "involvedObject.name=younger").stdout
    assert "DuplicateEmail" in shown and "Accepted" in shown
