"""Since when an object has claimed each key and been eligible: read from and written to status.

Ownership and quota follow *tenure*, not age: the owner of a key is its
earliest continuous claimant and the quota goes to the objects that have been
eligible (valid and unique) longest. The times live in the object's status,
written by the reconciler, so every decision stays a pure function of what
the cluster shows::

    status:
      claims:
      - {key: email, value: alice@example.com, since: "2026-11-26T11:25:21.123456Z"}
      - {key: webhook, value: "hmac-sha256:3f9a0c51d2e87b40", since: ...}
      eligibleSince: "2026-11-26T11:25:21.123456Z"

A record is honoured only while it refers to the current value: ``value`` is
the normalised mobile or email (already shown in ``status.normalized``) or,
for a webhook, a keyed digest of the access token (HMAC-SHA256 keyed by the
object's uid, truncated: the token never reaches status). An edit to a new
value, or a Secret now holding another token, leaves that claim unrecorded.

What an unrecorded claim (or an eligible object without ``eligibleSince``)
is ordered by:

- ``status.claims`` is present (the operator has recorded this object
  before) or ``status.observedGeneration`` differs from
  ``metadata.generation`` (the spec changed since the operator last looked):
  the claim is new, so it is ``PENDING`` -- after every recorded or
  creation-time claimant, ties by creation time, namespace, name. Taking the
  creation time here is exactly the takeover bug: an old object edited onto a
  younger object's email would sort first and take the email from it. The
  reconciler then records the time of that pass, which sorts after every
  record it has written before, so recording a pending claim never changes
  who owns what.
- otherwise (an object the operator has not seen yet, a status written by
  an earlier version, a wiped status): ``metadata.creationTimestamp``. This
  is the only fallback a pure function has; a status wiped by hand on an
  object that was edited since it was created sorts by its creation time.

Times are compared as ``order_time`` spells them (RFC 3339 in UTC with six
fractional digits), so a second-precision creationTimestamp and a recorded
microsecond time compare correctly. Within one second a create can still
sort before a claim recorded in that second: admission refuses such a create,
so only two racing requests can meet there.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alert_contacts.domain.types import Claim

# Sorts after every time order_time writes (digits): "not recorded yet, just now".
PENDING = "~"

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|\+00:00)$")
_DIGEST_PREFIX = "hmac-sha256:"
_DIGEST_HEX = 16


def order_time(text: Any) -> str | None:
    """``text`` as a comparable UTC time with six fractional digits, or None if it is not one."""
    return _order_time(text) if isinstance(text, str) else None


# Creation and claim times repeat across objects (whole batches share a second): each
# object's are read again on every change of it, four of them per Contact at a restart.
@functools.lru_cache(maxsize=8192)
def _order_time(text: str) -> str | None:
    found = _TIME.match(text)
    if found is None:
        return None
    fraction = (found.group(2) or "")[:6].ljust(6, "0")
    # Interned: at 50,000 objects most share a handful of creation seconds.
    return sys.intern(f"{found.group(1)}.{fraction}Z")


def display_time(order: str) -> str:
    """An ``order_time`` as status shows it: whole seconds without a zero fraction."""
    return order.replace(".000000Z", "Z")


def precise_now() -> str:
    """The current time, as ``order_time`` spells it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claim_value(claim: Claim, uid: str) -> str:
    """What status records of a claim: the normalised value, or a webhook token's digest."""
    if claim.kind != "webhook":
        return claim.value
    digest = hmac.new(uid.encode(), claim.value.encode(), hashlib.sha256).hexdigest()
    return _DIGEST_PREFIX + digest[:_DIGEST_HEX]


def _records(status: Mapping[str, Any]) -> dict[tuple[str, str], str] | None:
    found = status.get("claims")
    if not isinstance(found, Sequence) or isinstance(found, str):
        return None
    records: dict[tuple[str, str], str] = {}
    for entry in found:
        if not isinstance(entry, Mapping):
            continue
        since = order_time(entry.get("since"))
        key, value = entry.get("key"), entry.get("value")
        if since is not None and isinstance(key, str) and isinstance(value, str):
            records[(key, value)] = since
    return records


def tenure(
    claims: Sequence[Claim],
    *,
    uid: str,
    created: str,
    generation: int,
    status: Mapping[str, Any],
) -> tuple[dict[Claim, str], str]:
    """(since per claim, eligible since) for a valid object, read off its status.

    ``created`` is already an ``order_time`` (or any string the caller orders by).
    """
    records = _records(status)
    observed = status.get("observedGeneration")
    changed = isinstance(observed, int) and observed != generation
    fallback = PENDING if records is not None or changed else created
    known = records or {}
    since = {
        claim: known.get((claim.kind, claim_value(claim, uid)), fallback) for claim in claims
    }
    eligible = order_time(status.get("eligibleSince"))
    return since, eligible if eligible is not None else fallback


def claim_records(
    claims: Sequence[Claim], since: Mapping[Claim, str], uid: str, now: str
) -> list[dict[str, str]]:
    """``status.claims`` for these claims: pending ones are recorded as ``now``."""
    return [
        {
            "key": claim.kind,
            "value": claim_value(claim, uid),
            "since": display_time(now if since.get(claim, PENDING) == PENDING else since[claim]),
        }
        for claim in sorted(set(claims))
    ]


def eligible_record(eligible: bool, since: str | None, now: str) -> str | None:
    """``status.eligibleSince``: kept while eligible, ``now`` when it just became so."""
    if not eligible:
        return None
    return display_time(now if since is None or since == PENDING else since)


def tenure_records(status: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """The times ``status`` records, as (key, value, since) ``order_time`` triples;
    ``eligibleSince`` as ("eligibleSince", "", since)."""
    found = {(key, value, since) for (key, value), since in (_records(status) or {}).items()}
    eligible = order_time(status.get("eligibleSince"))
    if eligible is not None:
        found.add(("eligibleSince", "", eligible))
    return found
