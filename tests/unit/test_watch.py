"""LIST + WATCH against a fake API: pages, bookmarks, 410 Gone, errors, malformed input."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from alert_contacts.domain.records import SECRET_TYPE_KEY
from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime import watch
from alert_contacts.runtime.kube import ApiError
from alert_contacts.runtime.store import Store
from alert_contacts.runtime.watch import RESOURCES, Resource, Watcher
from alert_contacts.settings import Settings

CONTACTS = RESOURCES[0]


def obj(name: str, rv: str, email: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "a", "uid": f"u-{name}",
                         "resourceVersion": rv, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"email": email or f"{name}@example.com"}}


def line(type_: str, o: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": type_, "object": o}).encode() + b"\n"


class Stop(BaseException):
    """Ends a test's watcher once the scripted answers are used up."""


class FakeApi:
    """Scripted answers: ``lists`` are answers to GET (a page dict or an ApiError),
    ``watches`` are answers to watch streams (a list of lines or an ApiError)."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_queries: list[dict[str, Any]] = []
        self.watch_queries: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = "",
                      request_timeout: Any = None) -> Any:
        assert method == "GET"
        self.list_queries.append(dict(query or {}))
        if not self.lists:
            raise Stop
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @contextlib.asynccontextmanager
    async def stream(self, path: str, query: Mapping[str, Any], read_timeout: float
                     ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.watch_queries.append(dict(query))
        if not self.watches:
            raise Stop
        answer = self.watches.pop(0)
        if isinstance(answer, Exception):
            raise answer

        async def lines() -> AsyncIterator[bytes]:
            for item in answer:
                yield item

        yield lines()


def page(items: list[Any], rv: str, cont: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"items": items, "metadata": meta}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep

    async def instant(_: float) -> None:
        await real_sleep(0)

    monkeypatch.setattr(watch.asyncio, "sleep", instant)


def run(api: FakeApi, resource: Resource = CONTACTS, store: Store | None = None,
        page_size: int = 2) -> tuple[Store, Watcher]:
    store = store or Store(Settings())
    watcher = Watcher(api, store, resource, page_size=page_size)  # type: ignore[arg-type]
    with pytest.raises(Stop):
        asyncio.run(watcher.run())
    return store, watcher


def names(store: Store) -> set[str]:
    return {ref.name for ref in store.contacts}


def test_lists_in_pages_then_watches_from_the_listing_version() -> None:
    api = FakeApi(
        lists=[page([obj("a", "5"), obj("b", "6")], "10", cont="tok"), page([obj("c", "7")], "10")],
        watches=[[line("ADDED", obj("d", "11")), line("MODIFIED", obj("a", "12", "a2@x.org")),
                  line("DELETED", obj("b", "13"))]],
    )
    store, watcher = run(api)
    assert api.list_queries[0] == {"limit": 2}
    assert api.list_queries[1] == {"limit": 2, "continue": "tok"}
    assert api.watch_queries[0]["resourceVersion"] == "10"
    assert api.watch_queries[0]["allowWatchBookmarks"] == "true"
    assert names(store) == {"a", "c", "d"}
    assert store.contacts[ObjectRef("Contact", "a", "a")].spec == {"email": "a2@x.org"}
    # The watch ended normally: the next one resumes from the last version seen.
    assert api.watch_queries[1]["resourceVersion"] == "13"
    assert watcher.lists == 1


def test_the_next_page_is_asked_for_before_this_one_is_taken_in() -> None:
    # The API server prepares the next page while the operator validates this one.
    requests_made: list[int] = []
    store = Store(Settings())
    api = FakeApi(lists=[page([obj("a", "5"), obj("b", "6")], "10", cont="tok"),
                         page([obj("c", "7")], "10")], watches=[])
    store.listen(lambda *_: requests_made.append(len(api.list_queries)))
    run(api, store=store)
    assert requests_made == [2, 2, 2]


def test_the_collector_is_off_while_a_page_is_taken_in_and_on_again_after() -> None:
    during: list[bool] = []
    store = Store(Settings())
    store.listen(lambda *_: during.append(gc.isenabled()))
    api = FakeApi(lists=[page([obj("a", "5"), obj("b", "6")], "10")], watches=[])
    assert gc.isenabled()
    run(api, store=store)
    assert during == [False, False]
    assert gc.isenabled()


def test_a_bookmark_moves_the_resume_point_without_touching_the_store() -> None:
    bookmark = {"metadata": {"resourceVersion": "99"}}
    api = FakeApi(lists=[page([obj("a", "5")], "10")], watches=[[line("BOOKMARK", bookmark)]])
    seen: list[Any] = []
    store = Store(Settings())
    store.listen(lambda *change: seen.append(change))
    run(api, store=store)
    assert api.watch_queries[1]["resourceVersion"] == "99"
    assert len(seen) == 1  # only the listing's object


def test_410_gone_relists_and_announces_only_differences() -> None:
    gone = {"kind": "Status", "code": 410, "reason": "Expired"}
    api = FakeApi(
        lists=[page([obj("a", "5"), obj("b", "6")], "10"),
               page([obj("a", "5"), obj("c", "20")], "21")],
        watches=[[line("ERROR", gone)], ApiError(410, "Gone")],
    )
    store = Store(Settings())
    seen: list[tuple[str, str | None, str | None]] = []
    store.listen(lambda kind, old, new: seen.append(
        (kind, old and old.ref.name, new and new.ref.name)))  # type: ignore[union-attr]
    _, watcher = run(api, store=store)
    assert names(store) == {"a", "c"}
    assert seen[2:] == [("Contact", None, "c"), ("Contact", "b", None)]
    assert api.watch_queries[0]["resourceVersion"] == "10"
    # The watch from the re-listing's version also got 410: a third listing was asked for.
    assert api.watch_queries[1]["resourceVersion"] == "21"
    assert len(api.list_queries) == 3 and watcher.lists == 2


def test_an_expired_continue_token_restarts_the_listing() -> None:
    api = FakeApi(
        lists=[page([obj("a", "5")], "10", cont="old"), ApiError(410, "Gone"),
               page([obj("a", "5"), obj("b", "6")], "30")],
        watches=[],
    )
    store, _ = run(api)
    assert names(store) == {"a", "b"}
    assert api.list_queries[2] == {"limit": 2}
    assert store.synced.is_set() is False  # only one of four kinds listed


def test_errors_are_retried_and_storage_initializing_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="alert_contacts")
    api = FakeApi(
        lists=[ApiError(429, "Too Many Requests", "storage is (re)initializing", 1.0),
               ApiError(500, "Internal Server Error"), page([obj("a", "5")], "10")],
        watches=[ConnectionResetError(), [line("ADDED", obj("b", "11"))]],
    )
    store, _ = run(api)
    assert names(store) == {"a", "b"}
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "listing Contact failed (HTTP 429 Too Many Requests); retrying in 1.0s") \
        in levels
    assert not [m for lvl, m in levels if lvl == "ERROR"]
    assert [lvl for lvl, m in levels if "HTTP 500" in m] == ["WARNING"]
    # After the connection failed, the watch resumed from where it was.
    assert api.watch_queries[1]["resourceVersion"] == "10"


def test_malformed_lines_and_objects_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    nameless = {"metadata": {"namespace": "a"}, "spec": {}}
    api = FakeApi(
        lists=[page([obj("a", "5"), "not an object", nameless], "10")],
        watches=[[b"{not json\n", b"\n", line("ADDED", {"metadata": []}),
                  json.dumps({"type": "ADDED"}).encode() + b"\n",
                  json.dumps(["a list"]).encode() + b"\n",
                  line("SURPRISE", obj("z", "11")),
                  line("ADDED", obj("b", "12"))]],
    )
    store, _ = run(api)
    assert names(store) == {"a", "b"}
    assert api.watch_queries[1]["resourceVersion"] == "12"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 7


def test_secrets_keep_usable_values_of_opaque_ones_and_only_the_type_of_others() -> None:
    secrets = next(r for r in RESOURCES if r.kind == "Secret")
    opaque = {"metadata": {"name": "s", "namespace": "a"}, "type": "Opaque",
              "data": {"url": "aHR0cHM6Ly94"}}
    tls = {"metadata": {"name": "t", "namespace": "a"}, "type": "kubernetes.io/tls",
           "data": {"tls.key": "c2VjcmV0"}}
    api = FakeApi(lists=[page([opaque, tls], "3")], watches=[])
    store, _ = run(api, resource=secrets)
    # Every type is listed but Helm's release records, the API server's own filter.
    assert api.list_queries[0]["fieldSelector"] == "type!=helm.sh/release.v1"
    # A bot pointing at "t" is told its type; its data never sits in memory.
    assert store.secrets == {("a", "s"): {"url": "https://x"},
                             ("a", "t"): {SECRET_TYPE_KEY: "kubernetes.io/tls"}}


def test_the_first_listing_is_kept_out_of_the_cyclic_collectors_walks() -> None:
    # At 50,000 Contacts a full collection walked ~750,000 objects (190 ms), in the
    # middle of admission requests; what the first listing stores is frozen instead.
    gc.unfreeze()
    try:
        api = FakeApi(lists=[page([obj("a", "5"), obj("b", "6")], "10")], watches=[])
        store, _ = run(api)
        record = store.contacts[ObjectRef("Contact", "a", "a")]
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(record) and not any(o is record for o in gc.get_objects())
    finally:
        gc.unfreeze()
