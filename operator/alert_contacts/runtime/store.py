"""What the watches have seen: every Contact, DingTalkBot, ContactGroup and Secret.

The store holds one ``ObjectRecord`` per object of ours (by ``ObjectRef``) and,
of each Secret, only what ``domain.records.secret_data`` keeps (by
``(namespace, name)``). ``runtime.watch`` fills it; the reconciler and
admission read it.

Listeners
---------
``store.listen(callback)`` registers ``callback(kind, old, new)``, called
synchronously after every change the store takes in:

- ``kind`` is ``"Contact"``, ``"DingTalkBot"``, ``"ContactGroup"`` or ``"Secret"``;
- ``old`` is what the store held before (``None``: the object is new to it),
  ``new`` what it holds now (``None``: the object is gone);
- for our kinds both are ``ObjectRecord``; for Secrets, ``SecretRecord``;
- a change that leaves the record equal (only ``resourceVersion`` or labels
  moved) is not announced;
- during the initial listing every object is announced as new, before
  ``synced`` is set; after a re-list (the watch's history expired) only
  the differences are announced, deletions included.

Callbacks run inside the watch loop: they must be quick and must not block
(to do work, set a flag or an ``asyncio.Event`` and do it elsewhere). An
exception in one is logged and does not stop the others or the watch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alert_contacts.domain.conditions import now_rfc3339
from alert_contacts.domain.engine import BOT, CONTACT, SECRET
from alert_contacts.domain.engine import GROUP as GROUP_KIND
from alert_contacts.domain.plan import Plan, SecretIndex, candidates, plan_status
from alert_contacts.domain.records import ObjectRecord, record_of, secret_data
from alert_contacts.domain.types import Candidate, ObjectRef
from alert_contacts.domain.validation import validate_contact
from alert_contacts.settings import Settings

logger = logging.getLogger(__name__)

KINDS = (CONTACT, BOT, GROUP_KIND, SECRET)
# Memory at 50,000 objects: statuses repeat the same conditions (type, reason,
# message, time) and JSON parsing makes a new copy of each for every object.
# Equal conditions are shared between records instead; the cache of shared
# ones is dropped (not the sharing) when it grows this large.
SHARED_LIMIT = 50_000


def _interned(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with its keys and text values interned: a Contact's normalised
    mobile and email appear in its status twice and in its verdict and claims
    index, and claim times repeat across objects; one copy of each is kept."""
    return {sys.intern(str(k)): sys.intern(v) if isinstance(v, str) else v
            for k, v in mapping.items()}


class _Sharer:
    """One shared, read-only copy of equal conditions; status keys interned."""

    def __init__(self) -> None:
        self._conditions: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    def status(self, status: Mapping[str, Any]) -> dict[str, Any]:
        shared: dict[str, Any] = {}
        for key, value in status.items():
            if isinstance(value, list) and key == "conditions":
                value = [self._condition(c) for c in value]
            elif isinstance(value, list):  # claims: {key, value, since} each
                value = [_interned(item) if isinstance(item, dict) else item for item in value]
            elif isinstance(value, dict):  # normalized: the same values as the claims
                value = _interned(value)
            elif isinstance(value, str):  # eligibleSince: most claims' since too
                value = sys.intern(value)
            shared[sys.intern(str(key))] = value
        return shared

    def _condition(self, condition: Any) -> Any:
        if not isinstance(condition, dict):
            return condition
        key = tuple(condition.items())
        try:
            shared = self._conditions.get(key)
        except TypeError:  # a nested value: not a condition worth sharing
            return condition
        if shared is None:
            if len(self._conditions) >= SHARED_LIMIT:
                self._conditions.clear()
            shared = self._conditions[key] = {
                sys.intern(str(k)): sys.intern(v) if isinstance(v, str) else v
                for k, v in condition.items()
            }
        return shared


@dataclass(frozen=True)
class SecretRecord:
    """A Secret as the store keeps it: only values a bot can use (of a Secret of
    another type than Opaque, only its type)."""

    namespace: str
    name: str
    data: Mapping[str, str]


Record = ObjectRecord | SecretRecord
Key = ObjectRef | tuple[str, str]
Listener = Callable[[str, Record | None, Record | None], None]


class Store:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.contacts: dict[ObjectRef, ObjectRecord] = {}
        self.bots: dict[ObjectRef, ObjectRecord] = {}
        self.groups: dict[ObjectRef, ObjectRecord] = {}
        # (namespace, name) -> the kept values; a live view for bot validation.
        self.secrets: dict[tuple[str, str], Mapping[str, str]] = {}
        self._bots_per_namespace: Counter[str] = Counter()
        self._listeners: list[Listener] = []
        self._listed: set[str] = set()
        self._share = _Sharer()
        # Set once every kind's initial listing is in the store: before that, a
        # reconcile pass or an admission decision would see a partial cluster.
        self.synced = asyncio.Event()

    # -- listeners and sync --

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _announce(self, kind: str, old: Record | None, new: Record | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, old, new)
            except Exception:
                logger.exception("a store listener failed on a %s change", kind)

    def mark_listed(self, kind: str) -> None:
        """The initial listing of ``kind`` is in; ``synced`` once all kinds are."""
        self._listed.add(kind)
        if self._listed.issuperset(KINDS) and not self.synced.is_set():
            logger.info(
                "listed every kind: %d contacts, %d DingTalk bots, %d contact groups, "
                "%d Opaque Secrets", len(self.contacts), len(self.bots), len(self.groups),
                len(self.secrets),
            )
            self.synced.set()

    # -- taking in what the watches see --

    def _table(self, kind: str) -> dict[ObjectRef, ObjectRecord]:
        return {CONTACT: self.contacts, BOT: self.bots, GROUP_KIND: self.groups}[kind]

    def record(self, kind: str, body: Mapping[str, Any]) -> Record:
        """The record the store keeps of a raw object body (never raises)."""
        if kind == SECRET:
            meta = body.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            return SecretRecord(
                str(meta.get("namespace", "")), str(meta.get("name", "")), secret_data(body)
            )
        meta = body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        spec, status = body.get("spec"), body.get("status")
        spec = _interned(spec) if isinstance(spec, Mapping) else {}
        verdict = None
        if kind == CONTACT:
            # A Contact's validity depends on its spec alone: validate once per spec,
            # not again when only its status changes (the echo of our own write).
            ref = ObjectRef(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
            old = self.contacts.get(ref)
            if old is not None and old.verdict is not None and old.spec == spec:
                verdict = old.verdict
            else:
                verdict = validate_contact(spec, self.settings)
        if isinstance(status, dict):
            status = self._share.status(status)
        return record_of(kind, {**body, "spec": spec, "status": status}, verdict)

    def put(self, kind: str, body: Mapping[str, Any]) -> Key:
        """An object was added or modified; returns what the store keys it by."""
        record = self.record(kind, body)
        self._put(kind, record)
        if isinstance(record, SecretRecord):
            return (record.namespace, record.name)
        return record.ref

    def _put(self, kind: str, new: Record) -> None:
        if isinstance(new, SecretRecord):
            key = (new.namespace, new.name)
            old_data = self.secrets.get(key)
            if old_data == new.data:
                return
            self.secrets[key] = new.data
            old_secret = None if old_data is None else SecretRecord(*key, old_data)
            self._announce(kind, old_secret, new)
            return
        table = self._table(kind)
        old = table.get(new.ref)
        if old == new:
            return
        table[new.ref] = new
        if kind == BOT and old is None:
            self._bots_per_namespace[new.ref.namespace] += 1
        self._announce(kind, old, new)

    def delete(self, kind: str, body: Mapping[str, Any]) -> None:
        """An object was deleted."""
        new = self.record(kind, body)
        if isinstance(new, SecretRecord):
            self._delete_secret((new.namespace, new.name))
        else:
            self._delete(kind, new.ref)

    def _delete_secret(self, key: tuple[str, str]) -> None:
        data = self.secrets.pop(key, None)
        if data is not None:
            self._announce(SECRET, SecretRecord(*key, data), None)

    def _delete(self, kind: str, ref: ObjectRef) -> None:
        old = self._table(kind).pop(ref, None)
        if old is None:
            return
        if kind == BOT:
            self._bots_per_namespace[ref.namespace] -= 1
            if self._bots_per_namespace[ref.namespace] <= 0:
                del self._bots_per_namespace[ref.namespace]
        self._announce(kind, old, None)

    def retain_only(self, kind: str, keys: set[Key]) -> None:
        """After a full listing of ``kind``: what it did not list is gone."""
        if kind == SECRET:
            for key in [k for k in self.secrets if k not in keys]:
                self._delete_secret(key)
        else:
            for ref in [r for r in self._table(kind) if r not in keys]:
                self._delete(kind, ref)

    def replace(self, kind: str, bodies: Iterable[Mapping[str, Any]]) -> None:
        """A full listing of ``kind``: the rest is put, what it lacks is gone."""
        self.retain_only(kind, {self.put(kind, body) for body in bodies})

    # -- reading: what the reconciler and admission ask --

    def has_bots_in(self, namespace: str) -> bool:
        return namespace in self._bots_per_namespace

    def secret_index(self) -> SecretIndex:
        return self.secrets

    def candidates(self, settings: Settings, secrets: SecretIndex | None = None) -> list[Candidate]:
        return candidates(
            self.contacts.values(), self.bots.values(),
            self.secrets if secrets is None else secrets, settings,
        )

    def claimant_refs(self) -> set[ObjectRef]:
        """Every existing Contact and DingTalkBot, valid or not."""
        return {*self.contacts, *self.bots}

    def plan(self, settings: Settings) -> Plan:
        return plan_status(
            list(self.contacts.values()), list(self.bots.values()), list(self.groups.values()),
            self.secrets, settings, now_rfc3339(),
        )
