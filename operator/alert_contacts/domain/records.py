"""What the operator keeps of each watched object: plain data read off its body."""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alert_contacts.domain.types import NotOpaque, ObjectRef, Verdict

# A webhook URL or signing secret is short text; larger values are other workloads' data.
MAX_SECRET_VALUE_B64 = 4096
# Where secret_data keeps the type of a Secret it does not read: not a valid data
# key ([-._a-zA-Z0-9]+), so no Secret's own key can collide with it.
SECRET_TYPE_KEY = "/type"


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One Contact, DingTalkBot or ContactGroup as last seen by the watch.

    ``verdict`` is filled for Contacts when indexed (their validity depends on
    the spec alone); bots are validated at decision time because their
    webhook may live in a Secret.
    """

    ref: ObjectRef
    uid: str
    created: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    verdict: Verdict | None = field(default=None, compare=False)
    # The alerting.contacts.dev/send-test annotation (a test send asked for), if set.
    send_test: str | None = None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def record_of(kind: str, body: Mapping[str, Any], verdict: Verdict | None = None) -> ObjectRecord:
    """Read a record off a raw object body; never raises on a malformed body.

    The namespace and creation time are interned: many records share them."""
    meta = _mapping(body.get("metadata"))
    generation = meta.get("generation")
    return ObjectRecord(
        ref=ObjectRef(kind, sys.intern(str(meta.get("namespace", ""))), str(meta.get("name", ""))),
        uid=str(meta.get("uid", "")),
        created=sys.intern(str(meta.get("creationTimestamp", ""))),
        generation=generation if isinstance(generation, int) else 0,
        spec=_mapping(body.get("spec")),
        status=_mapping(body.get("status")),
        verdict=verdict,
        send_test=_send_test(meta),
    )


SEND_TEST_ANNOTATION = "alerting.contacts.dev/send-test"


def _send_test(meta: Mapping[str, Any]) -> str | None:
    value = _mapping(meta.get("annotations")).get(SEND_TEST_ANNOTATION)
    return value if isinstance(value, str) and value else None


def secret_data(body: Mapping[str, Any]) -> dict[str, str]:
    """What the operator keeps of a Secret: its keys, and only the values a bot can use.

    A value is kept only when it could be a webhook URL or a signing secret
    (text starting with "http", in any case, or "SEC"; at most 4 KiB); any other key is kept
    with an empty value, so a bot pointing at it is told what is wrong with it
    rather than that it is missing, while other workloads' passwords and blobs
    never sit in the operator's memory. Of a Secret of another type than Opaque
    only the type is kept, so a bot pointing at it is told that, not "not found".
    """
    secret_type = str(body.get("type") or "Opaque")
    if secret_type != "Opaque":
        return {SECRET_TYPE_KEY: secret_type}
    data = _mapping(body.get("data"))
    kept: dict[str, str] = {}
    for key, value in data.items():
        kept[str(key)] = ""
        if not isinstance(value, str) or len(value) > MAX_SECRET_VALUE_B64:
            continue
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if text.strip()[:4].lower() == "http" or text.strip().startswith("SEC"):
            kept[str(key)] = text
    return kept


def secret_value(data: Mapping[str, str] | None, key: str) -> str | NotOpaque | None:
    """What a bot reading ``key`` of a Secret gets: the value, ``NotOpaque`` when the
    Secret is of a type the operator does not read, None when the Secret or key is missing.

    ``data`` is what ``secret_data`` kept of the Secret (None: no such Secret).
    """
    if data is None:
        return None
    if SECRET_TYPE_KEY in data:
        return NotOpaque(data[SECRET_TYPE_KEY])
    return data.get(key)
