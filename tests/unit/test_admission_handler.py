"""The admission handler around the pure decision: what it validates for an edit."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from alert_contacts.domain.validation import validate_contact
from alert_contacts.handlers import admission
from alert_contacts.runtime.reconciler import Reconciler
from alert_contacts.runtime.store import Store
from alert_contacts.settings import Settings


def contact(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "team-a", "name": "alice", "uid": "u1", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    specs: list[Any] = []

    def counting(spec: Any, settings: Settings) -> Any:
        specs.append(dict(spec))
        return validate_contact(spec, settings)

    monkeypatch.setattr(admission, "validate_contact", counting)
    return specs


def memo_with(*bodies: dict[str, Any]) -> kopf.Memo:
    store = Store(Settings())
    reconciler = Reconciler(store, Settings(), None)  # type: ignore[arg-type]
    store.listen(reconciler.on_change)
    for body in bodies:
        store.put("Contact", body)
    store.synced.set()
    memo = kopf.Memo()
    memo.reconciler = reconciler
    return memo


OLD = {"email": "alice@example.com"}
NEW = {"email": "alice@example.com", "mobile": "+86 138 0013 8000"}


def test_an_edits_old_spec_is_not_validated_again_when_the_engine_holds_it(
    validated: list[Any],
) -> None:
    warnings: list[str] = []
    admission._admit_claimant("Contact", contact(NEW), contact(OLD), memo_with(contact(OLD)),
                              warnings)
    assert validated == [NEW]
    assert warnings == []


def test_an_old_spec_the_engine_has_not_seen_yet_is_validated(validated: list[Any]) -> None:
    # The watch has not yet brought the spec the API server holds.
    older = {"email": "a.older@example.com"}
    admission._admit_claimant("Contact", contact(NEW), contact(OLD), memo_with(contact(older)),
                              [])
    assert validated == [NEW, OLD]


def test_an_edit_making_a_valid_contact_invalid_is_still_refused(validated: list[Any]) -> None:
    with pytest.raises(kopf.AdmissionError) as refused:
        admission._admit_claimant("Contact", contact({"email": "not-an-email"}), contact(OLD),
                                  memo_with(contact(OLD)), [])
    assert refused.value.code == 422
    assert "spec.email" in str(refused.value)
