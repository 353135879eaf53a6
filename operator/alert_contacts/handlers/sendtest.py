"""Test sends: ``kubectl annotate dingtalkbot/NAME alerting.contacts.dev/send-test=VALUE``
(or a ContactGroup) sends one marked test message and records ``status.lastTest``.

A value already recorded in ``status.lastTest.request`` is not sent again, so
restarts and repeated watch events send nothing twice.
"""

from __future__ import annotations

from typing import Any

import kopf

from alert_contacts.domain.records import record_of
from alert_contacts.domain.types import GROUP, VERSION

SEND_TEST = f"{GROUP}/send-test"


async def _requested(kind: str, body: kopf.Body, memo: kopf.Memo) -> None:
    delivery = getattr(memo, "delivery", None)
    if delivery is None:
        return
    record = record_of(kind, body)
    value = (body.get("metadata", {}).get("annotations") or {}).get(SEND_TEST)
    delivery.request_test(record.ref, value, record.status)


@kopf.on.event(GROUP, VERSION, "dingtalkbots", annotations={SEND_TEST: kopf.PRESENT})
async def bot_send_test(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _requested("DingTalkBot", body, memo)


@kopf.on.event(GROUP, VERSION, "contactgroups", annotations={SEND_TEST: kopf.PRESENT})
async def group_send_test(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _requested("ContactGroup", body, memo)
