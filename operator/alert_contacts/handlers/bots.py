"""DingTalk bots: index records; validated at decision time (their webhook may be in a Secret)."""

from __future__ import annotations

from typing import Any

import kopf

from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import GROUP, VERSION, ObjectRef


@kopf.index(GROUP, VERSION, "dingtalkbots")
async def bots_index(body: kopf.Body, **_: Any) -> dict[ObjectRef, ObjectRecord]:
    record = record_of("DingTalkBot", body)
    return {record.ref: record}


@kopf.on.event(GROUP, VERSION, "dingtalkbots")
async def bot_changed(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    memo.reconciler.observe("DingTalkBot", body, deleted=type == "DELETED")
