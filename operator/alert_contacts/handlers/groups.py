"""Contact groups: index records; membership is resolved by the reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import GROUP, VERSION, ObjectRef


@kopf.index(GROUP, VERSION, "contactgroups")
async def groups_index(body: kopf.Body, **_: Any) -> dict[ObjectRef, ObjectRecord]:
    record = record_of("ContactGroup", body)
    return {record.ref: record}


@kopf.on.event(GROUP, VERSION, "contactgroups")
async def group_changed(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    memo.reconciler.observe("ContactGroup", body, deleted=type == "DELETED")
