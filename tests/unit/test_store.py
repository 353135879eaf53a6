"""The store: records by ref, Secrets by (namespace, name), change notifications, sync."""

from __future__ import annotations

import base64
import json
from typing import Any

from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime.store import KINDS, Record, SecretRecord, Store
from alert_contacts.settings import Settings


def body(name: str, namespace: str = "a", spec: dict[str, Any] | None = None,
         status: dict[str, Any] | None = None, rv: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "resourceVersion": rv},
        "spec": spec if spec is not None else {"email": f"{name}@example.com"},
        "status": status or {},
    }


def secret(name: str, data: dict[str, str], namespace: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


class Recorder:
    def __init__(self, store: Store) -> None:
        self.seen: list[tuple[str, Record | None, Record | None]] = []
        store.listen(lambda kind, old, new: self.seen.append((kind, old, new)))

    def names(self) -> list[tuple[str, str | None, str | None]]:
        def name(r: Record | None) -> str | None:
            if r is None:
                return None
            return r.name if isinstance(r, SecretRecord) else r.ref.name
        return [(kind, name(old), name(new)) for kind, old, new in self.seen]


def test_add_modify_delete_are_announced_with_old_and_new() -> None:
    store = Store(Settings())
    rec = Recorder(store)
    store.put("Contact", body("alice"))
    store.put("Contact", body("alice", status={"observedGeneration": 1}))
    store.delete("Contact", body("alice"))
    assert rec.names() == [("Contact", None, "alice"), ("Contact", "alice", "alice"),
                           ("Contact", "alice", None)]
    _, old, new = rec.seen[1]
    assert isinstance(old, ObjectRecord) and isinstance(new, ObjectRecord)
    assert old.status == {} and new.status == {"observedGeneration": 1}
    assert store.contacts == {}


def test_a_change_that_leaves_the_record_equal_is_not_announced() -> None:
    store = Store(Settings())
    rec = Recorder(store)
    store.put("ContactGroup", body("g", spec={"contacts": ["x"]}, rv="1"))
    store.put("ContactGroup", body("g", spec={"contacts": ["x"]}, rv="2"))  # labels, say
    store.delete("ContactGroup", body("never-seen"))
    assert rec.names() == [("ContactGroup", None, "g")]


def test_contacts_are_validated_once_per_spec() -> None:
    store = Store(Settings())
    store.put("Contact", body("alice", spec={"email": "not-an-email"}))
    ref = ObjectRef("Contact", "a", "alice")
    first = store.contacts[ref].verdict
    assert first is not None and not first.valid
    store.put("Contact", body("alice", spec={"email": "not-an-email"}, status={"x": 1}))
    assert store.contacts[ref].verdict is first  # status echo: the verdict is reused
    store.put("Contact", body("alice", spec={"email": "alice@example.com"}))
    verdict = store.contacts[ref].verdict
    assert verdict is not None and verdict.valid


def test_secrets_keep_only_what_a_bot_can_use() -> None:
    store = Store(Settings())
    rec = Recorder(store)
    store.put("Secret", secret("hook", {"url": "https://oapi.dingtalk.com/robot/send?x",
                                        "password": "hunter2"}))
    assert store.secrets[("a", "hook")] == {
        "url": "https://oapi.dingtalk.com/robot/send?x", "password": ""}
    store.put("Secret", secret("hook", {"url": "https://oapi.dingtalk.com/robot/send?x",
                                        "password": "changed"}))  # nothing kept changed
    store.delete("Secret", secret("hook", {}))
    assert rec.names() == [("Secret", None, "hook"), ("Secret", "hook", None)]
    assert store.secret_index() == {}


def test_a_relisting_announces_only_the_differences() -> None:
    store = Store(Settings())
    store.replace("Contact", [body("a"), body("b"), body("c")])
    rec = Recorder(store)
    store.replace("Contact", [body("a"), body("b", spec={"email": "b2@example.com"}), body("d")])
    assert sorted(rec.names(), key=str) == sorted(
        [("Contact", "b", "b"), ("Contact", None, "d"), ("Contact", "c", None)], key=str)
    assert {r.name for r in store.contacts} == {"a", "b", "d"}


def test_synced_once_every_kind_is_listed() -> None:
    store = Store(Settings())
    for kind in KINDS[:-1]:
        store.mark_listed(kind)
        assert not store.synced.is_set()
    store.mark_listed(KINDS[-1])
    assert store.synced.is_set()


def test_a_failing_listener_does_not_stop_the_others() -> None:
    store = Store(Settings())

    def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    store.listen(broken)
    rec = Recorder(store)
    store.put("DingTalkBot", body("bot", spec={"webhook": {"url": "https://x"}}))
    assert rec.names() == [("DingTalkBot", None, "bot")]
    assert store.has_bots_in("a") and not store.has_bots_in("b")
    store.delete("DingTalkBot", body("bot"))
    assert not store.has_bots_in("a")


def test_reads_for_reconcile_and_admission() -> None:
    store = Store(Settings())
    store.put("Contact", body("alice"))
    store.put("Contact", body("bob", spec={"email": "alice@example.com"}, namespace="b"))
    store.put("ContactGroup", body("g", spec={"contacts": ["alice"]}))
    assert store.claimant_refs() == {ObjectRef("Contact", "a", "alice"),
                                     ObjectRef("Contact", "b", "bob")}
    assert len(store.candidates(store.settings)) == 2
    plan = store.plan(store.settings)
    assert plan.ready == {ObjectRef("Contact", "a", "alice"): True,
                          ObjectRef("Contact", "b", "bob"): False}
    assert len(plan.writes) == 3


def test_equal_conditions_are_shared_between_records() -> None:
    store = Store(Settings())
    ready = {"type": "Ready", "status": "True", "reason": "Accepted", "message": "ok",
             "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    store.put("Contact", body("a", status={"conditions": [dict(ready)]}))
    store.put("Contact", body("b", status={"conditions": [dict(ready)],
                                           "normalized": {"email": "b@example.com"}}))
    a, b = (store.contacts[ObjectRef("Contact", "a", n)] for n in ("a", "b"))
    assert a.status["conditions"][0] is b.status["conditions"][0]
    assert a.status["conditions"][0] == ready
    assert b.status["normalized"] == {"email": "b@example.com"}
    assert a.ref.namespace is b.ref.namespace and a.created is b.created


def test_a_contacts_normalised_values_are_kept_once() -> None:
    # 50,000 contacts: the status repeats the verdict's values and the claim times repeat.
    store = Store(Settings())
    since = "2026-01-01T00:00:00Z"
    status = {"normalized": {"email": "alice@example.com"}, "eligibleSince": since,
              "claims": [{"key": "email", "value": "alice@example.com", "since": since}]}
    store.put("Contact", body("alice", spec={"email": "alice@example.com"},
                              status=json.loads(json.dumps(status))))
    record = store.contacts[ObjectRef("Contact", "a", "alice")]
    assert record.verdict is not None
    email = record.verdict.normalized["email"]
    assert record.status["normalized"]["email"] is email
    assert record.status["claims"][0]["value"] is email
    assert record.spec["email"] is email
    assert record.status["claims"][0]["since"] is record.status["eligibleSince"]
    assert record.status == status
