"""The decisions of ``decide()`` kept up to date one change at a time.

``DecisionEngine`` holds the current set of Contacts, DingTalkBots,
ContactGroups and the Secrets bots read. Applying or removing one of them
updates only what that change touches and returns the refs whose desired
status may have changed:

- the object itself;
- for every key it adds or drops (claim -> claimants, ordered by tenure), all
  claimants of that key when its owner changes (a loser's message names the
  owner);
- the quota boundary: eligible (valid and unique) objects sit in an
  order-statistics list by ``Candidate.eligible_key``, so an insert or removal
  above the boundary moves exactly one object across it (QuotaExceeded
  messages do not carry a position, so nothing else changes);
- the groups that name any object whose readiness or existence changed
  (a reverse index, member -> groups);
- for a Secret, the bots that read it (re-validated, then as above).

Each change costs O(k log n) for k touched objects; nothing walks the whole
set. ``decision()`` and ``desired_status()`` answer for one ref with the same
functions ``plan_status`` uses, and admission asks ``owner()``,
``in_use()`` and ``decision()`` instead of re-deriving the cluster. Pure: no
kopf, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sortedcontainers import SortedList

from alert_contacts.domain.decisions import (
    Decision,
    conflicts_of,
    duplicate_decision,
    eligible_decision,
    invalid_decision,
)
from alert_contacts.domain.groups import GroupDecision, evaluate_group, member_refs
from alert_contacts.domain.plan import (
    StatusWrite,
    bot_verdict,
    candidate_of,
    claimant_status,
    contact_verdict,
    group_desired_status,
    status_write,
)
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import Candidate, Claim, ObjectRef, Verdict
from alert_contacts.settings import Settings

CONTACT, BOT, GROUP, SECRET = "Contact", "DingTalkBot", "ContactGroup", "Secret"
SecretKey = tuple[str, str]
# (*claim_key or eligible_key, ref): one flat tuple, 48 bytes less than a nested pair.
_Entry = tuple[str, str, str, str, str, ObjectRef]


class SecretLike(Protocol):
    """A Secret as a store keeps it: where it is and the values a bot may use."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> Mapping[str, str]: ...


def _secret_names(spec: Mapping[str, Any]) -> set[str]:
    """The Secrets a bot spec reads (webhook URL and signing secret)."""
    names: set[str] = set()
    webhook = spec.get("webhook")
    refs = [webhook.get("secretRef") if isinstance(webhook, Mapping) else None,
            spec.get("signingSecretRef")]
    for ref in refs:
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
            names.add(ref["name"])
    return names


class DecisionEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._records: dict[ObjectRef, ObjectRecord] = {}
        self._candidates: dict[ObjectRef, Candidate] = {}
        # Most keys have one claimant: it is kept as a bare entry, and only a key
        # with two or more gets a SortedList (about 200 bytes less per key).
        self._claimants: dict[Claim, _Entry | SortedList[_Entry]] = {}
        self._eligible: SortedList[_Entry] = SortedList()
        self._eligible_entry: dict[ObjectRef, _Entry] = {}
        self._groups: dict[ObjectRef, ObjectRecord] = {}
        self._groups_naming: dict[ObjectRef, set[ObjectRef]] = {}
        self._secrets: dict[SecretKey, Mapping[str, str]] = {}
        self._bots_reading: dict[SecretKey, set[ObjectRef]] = {}

    # ------------------------------------------------------------ changes

    def apply(self, kind: str, old: Any, new: Any) -> set[ObjectRef]:
        """A store's change notice: ``old``/``new`` are ObjectRecords (SecretLike for
        Secrets), None when the object is new or gone. Returns the touched refs."""
        if kind == SECRET:
            gone = new is None
            where = old if gone else new
            return self.apply_secret(where.namespace, where.name, None if gone else new.data)
        if new is None:
            return self.remove(old.ref) if old is not None else set()
        return self.apply_object(new)

    def apply_object(self, record: ObjectRecord) -> set[ObjectRef]:
        """A Contact, DingTalkBot or ContactGroup was created or changed."""
        if record.ref.kind == GROUP:
            return self._apply_group(record)
        return self._set_claimant(record.ref, record)

    def remove(self, ref: ObjectRef) -> set[ObjectRef]:
        """A Contact, DingTalkBot or ContactGroup was deleted."""
        if ref.kind == GROUP:
            return self._remove_group(ref)
        if ref not in self._records:
            return set()
        return self._set_claimant(ref, None)

    def apply_secret(
        self, namespace: str, name: str, data: Mapping[str, str] | None
    ) -> set[ObjectRef]:
        """A Secret was created or changed (``data``) or deleted (None)."""
        key = (namespace, name)
        if data is None:
            self._secrets.pop(key, None)
        else:
            self._secrets[key] = dict(data)
        touched: set[ObjectRef] = set()
        for bot in sorted(self._bots_reading.get(key, ())):
            touched |= self._set_claimant(bot, self._records[bot])
        return touched

    # ------------------------------------------------------------ queries

    def __contains__(self, ref: object) -> bool:
        return ref in self._records or ref in self._groups

    def record(self, ref: ObjectRef) -> ObjectRecord | None:
        return self._records.get(ref) or self._groups.get(ref)

    def candidate(self, ref: ObjectRef) -> Candidate | None:
        return self._candidates.get(ref)

    def secret_index(self) -> Mapping[SecretKey, Mapping[str, str]]:
        return self._secrets

    def owner(self, claim: Claim, *, excluding: ObjectRef | None = None) -> ObjectRef | None:
        """The owner of ``claim`` (its earliest valid claimant), optionally as if
        ``excluding`` did not claim it."""
        for entry in self._entries(claim):
            if entry[-1] != excluding:
                return entry[-1]
        return None

    def claimants(self, claim: Claim) -> list[ObjectRef]:
        """Valid claimants of ``claim``, owner first."""
        return [entry[-1] for entry in self._entries(claim)]

    def in_use(self, *, excluding: ObjectRef | None = None) -> int:
        """Valid and unique objects (each needs a quota slot), optionally not counting one."""
        count = len(self._eligible)
        return count - 1 if excluding in self._eligible_entry else count

    def waiting(self, after: int) -> ObjectRef | None:
        """The eligible object at 0-based ``after`` in the quota order, if any."""
        return self._eligible[after][-1] if after < len(self._eligible) else None

    def position(self, ref: ObjectRef) -> int | None:
        """1-based place in the quota order, None when not eligible. O(log n)."""
        entry = self._eligible_entry.get(ref)
        return None if entry is None else self._eligible.index(entry) + 1

    def decision(self, ref: ObjectRef) -> Decision:
        candidate = self._candidates[ref]
        verdict = candidate.verdict
        if not verdict.valid:
            return invalid_decision(verdict)
        conflicts = conflicts_of(candidate, self._owner_of_claimed)
        if conflicts:
            return duplicate_decision(verdict, conflicts)
        position = self.position(ref)
        assert position is not None, "a valid object owning its keys is eligible"
        return eligible_decision(verdict, position, self.settings.quota)

    def decisions(self) -> dict[ObjectRef, Decision]:
        """Every claimant's decision (what ``decide()`` over the same set returns)."""
        return {ref: self.decision(ref) for ref in self._candidates}

    def ready(self, ref: ObjectRef) -> bool:
        return ref in self._candidates and self.decision(ref).ready

    def group_decision(self, ref: ObjectRef) -> GroupDecision:
        group = self._groups[ref]
        members = member_refs(ref.namespace, group.spec)
        ready = {m: self.ready(m) for m in members if m in self._candidates}
        return evaluate_group(ref.namespace, group.spec, ready)

    def desired_status(self, ref: ObjectRef, since_now: str) -> dict[str, Any]:
        """The status ``plan_status`` would want for ``ref`` (which must exist)."""
        group = self._groups.get(ref)
        if group is not None:
            return group_desired_status(group, self.group_decision(ref))
        record = self._records[ref]
        return claimant_status(record, self._candidates[ref], self.decision(ref), since_now)

    def reason(self, ref: ObjectRef) -> str:
        """The reason of ``ref``'s Ready condition (which must exist)."""
        if ref in self._groups:
            return self.group_decision(ref).reason
        return self.decision(ref).reason

    def write_for(self, ref: ObjectRef, now: str, since_now: str) -> StatusWrite | None:
        """The status write ``ref`` needs, or None (also when ``ref`` is gone)."""
        record = self.record(ref)
        if record is None:
            return None
        return status_write(record, self.desired_status(ref, since_now), now)

    # ------------------------------------------------------------ claimants

    def _verdict(self, record: ObjectRecord) -> Verdict:
        if record.ref.kind == CONTACT:
            return contact_verdict(record, self.settings)
        return bot_verdict(record, self._secrets, self.settings)

    def _set_claimant(self, ref: ObjectRef, record: ObjectRecord | None) -> set[ObjectRef]:
        """Replace (or drop, when ``record`` is None) one claimant; the touched refs."""
        old = self._candidates.get(ref)
        new = None if record is None else candidate_of(record, self._verdict(record))
        new_claims = set(new.verdict.claims) if new is not None and new.verdict.valid else set()
        if (old is None and record is not None and new is not None
                and ref not in self._groups_naming
                and not any(claim in self._claimants for claim in new_claims)):
            return self._add_alone(ref, record, new)
        old_claims = set(old.verdict.claims) if old is not None and old.verdict.valid else set()
        affected = sorted(old_claims | new_claims)
        owners_before = {claim: self.owner(claim) for claim in affected}
        involved = {ref}.union(*(self.claimants(claim) for claim in affected))
        # Readiness matters only to the groups that name an object (most have none).
        readiness_before = {other: self._readiness(other) for other in involved
                            if other in self._groups_naming}

        if old is not None:
            for claim in old_claims:
                self._drop_claimant(claim, (*old.claim_key(claim), ref))
        self._track_secrets(ref, self._records.get(ref), record)
        if new is None or record is None:
            self._candidates.pop(ref, None)
            self._records.pop(ref, None)
        else:
            self._candidates[ref] = new
            self._records[ref] = record
            for claim in new_claims:
                self._add_claimant(claim, (*new.claim_key(claim), ref))

        # A changed owner changes every claimant's decision (losers' messages name it).
        touched = {ref}
        for claim in affected:
            before = owners_before[claim]
            if self.owner(claim) != before:
                touched.update(self.claimants(claim))
                if before is not None:
                    touched.add(before)
        # Only these can have changed eligibility (or, for ref, its place in the order).
        crossed: set[ObjectRef] = set()
        for other in sorted(touched):
            crossed |= self._refresh_eligibility(other)
        touched |= crossed
        # Objects that crossed the quota boundary changed readiness by definition.
        for other in crossed | {r for r, b in readiness_before.items() if self._readiness(r) != b}:
            touched |= self._groups_naming.get(other, set())
        return touched

    def _add_alone(self, ref: ObjectRef, record: ObjectRecord, new: Candidate) -> set[ObjectRef]:
        """``_set_claimant`` for a new object that no group names and whose keys nobody
        claims (most objects of a first listing, and of new ones): it owns its keys, no
        other's decision changes, and only the quota boundary can move. The same result,
        without looking for rivals and readiness changes that cannot be."""
        self._track_secrets(ref, None, record)
        self._candidates[ref] = new
        self._records[ref] = record
        if new.verdict.valid:
            for claim in new.verdict.claims:
                self._add_claimant(claim, (*new.claim_key(claim), ref))
        crossed = self._refresh_eligibility(ref)
        touched = {ref, *crossed}
        for other in crossed:
            touched |= self._groups_naming.get(other, set())
        return touched

    def _entries(self, claim: Claim) -> Sequence[_Entry]:
        found = self._claimants.get(claim)
        if found is None:
            return ()
        return found if isinstance(found, SortedList) else (found,)

    def _owner_of_claimed(self, claim: Claim) -> ObjectRef:
        """The owner of a key someone valid claims."""
        found = self._claimants[claim]
        return found[0][-1] if isinstance(found, SortedList) else found[-1]

    def _add_claimant(self, claim: Claim, entry: _Entry) -> None:
        found = self._claimants.get(claim)
        if found is None:
            self._claimants[claim] = entry
        elif isinstance(found, SortedList):
            found.add(entry)
        else:
            self._claimants[claim] = SortedList((found, entry))

    def _drop_claimant(self, claim: Claim, entry: _Entry) -> None:
        found = self._claimants[claim]
        if not isinstance(found, SortedList):
            del self._claimants[claim]
            return
        found.remove(entry)
        if len(found) == 1:
            self._claimants[claim] = found[0]

    def _readiness(self, ref: ObjectRef) -> bool | None:
        """None: does not exist; otherwise whether it is Ready."""
        return self.ready(ref) if ref in self._candidates else None

    def _is_eligible(self, ref: ObjectRef) -> bool:
        candidate = self._candidates.get(ref)
        if candidate is None or not candidate.verdict.valid:
            return False
        return all(self._owner_of_claimed(claim) == ref for claim in candidate.verdict.claims)

    def _refresh_eligibility(self, ref: ObjectRef) -> set[ObjectRef]:
        """Re-file ``ref`` in the quota order; returns the object pushed across the boundary."""
        quota = self.settings.quota
        crossed: set[ObjectRef] = set()
        entry = self._eligible_entry.pop(ref, None)
        if entry is not None:
            index = self._eligible.index(entry)
            self._eligible.remove(entry)
            if 0 <= index < quota < len(self._eligible) + 1:
                crossed.add(self._eligible[quota - 1][-1])  # moved up into the quota
        if self._is_eligible(ref):
            entry = (*self._candidates[ref].eligible_key(), ref)
            self._eligible.add(entry)
            self._eligible_entry[ref] = entry
            if quota < len(self._eligible) and self._eligible.index(entry) < quota:
                crossed.add(self._eligible[quota][-1])  # pushed out of the quota
        crossed.discard(ref)
        return crossed

    def _track_secrets(
        self, ref: ObjectRef, old: ObjectRecord | None, new: ObjectRecord | None
    ) -> None:
        if ref.kind != BOT:
            return
        before = _secret_names(old.spec) if old is not None else set()
        after = _secret_names(new.spec) if new is not None else set()
        for name in before - after:
            readers = self._bots_reading.get((ref.namespace, name))
            if readers is not None:
                readers.discard(ref)
                if not readers:
                    del self._bots_reading[(ref.namespace, name)]
        for name in after - before:
            self._bots_reading.setdefault((ref.namespace, name), set()).add(ref)

    # ------------------------------------------------------------ groups

    def _apply_group(self, record: ObjectRecord) -> set[ObjectRef]:
        self._name_members(record.ref, self._groups.get(record.ref), record)
        self._groups[record.ref] = record
        return {record.ref}

    def _remove_group(self, ref: ObjectRef) -> set[ObjectRef]:
        old = self._groups.pop(ref, None)
        if old is None:
            return set()
        self._name_members(ref, old, None)
        return {ref}

    def _name_members(
        self, ref: ObjectRef, old: ObjectRecord | None, new: ObjectRecord | None
    ) -> None:
        before = set(member_refs(ref.namespace, old.spec)) if old is not None else set()
        after = set(member_refs(ref.namespace, new.spec)) if new is not None else set()
        for member in before - after:
            naming = self._groups_naming.get(member)
            if naming is not None:
                naming.discard(ref)
                if not naming:
                    del self._groups_naming[member]
        for member in after - before:
            self._groups_naming.setdefault(member, set()).add(ref)


def engine_of(
    settings: Settings,
    objects: Iterable[ObjectRecord],
    secrets: Mapping[SecretKey, Mapping[str, str]] | None = None,
) -> DecisionEngine:
    """An engine holding ``objects`` and ``secrets`` (a convenience for tests and tools)."""
    engine = DecisionEngine(settings)
    for (namespace, name), data in (secrets or {}).items():
        engine.apply_secret(namespace, name, data)
    for record in objects:
        engine.apply_object(record)
    return engine
