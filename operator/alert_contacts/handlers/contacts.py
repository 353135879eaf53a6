"""Contacts: keep an index of records (validated once per change) and wake the reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import GROUP, VERSION, ObjectRef
from alert_contacts.domain.validation import validate_contact


@kopf.index(GROUP, VERSION, "contacts")
async def contacts_index(
    body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[ObjectRef, ObjectRecord]:
    verdict = validate_contact(body.get("spec") or {}, memo.settings)
    record = record_of("Contact", body, verdict)
    return {record.ref: record}


@kopf.on.event(GROUP, VERSION, "contacts")
async def contact_changed(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    memo.reconciler.observe("Contact", body, deleted=type == "DELETED")
