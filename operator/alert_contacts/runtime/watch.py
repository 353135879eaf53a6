"""One LIST + WATCH per kind, feeding the store.

For each kind: list in pages (``limit``/``continue``), then watch from the
listing's resourceVersion with bookmarks (so a reconnect resumes where it
left off even when nothing of ours changed for a while). When the API has
forgotten that resourceVersion (410 Gone) the kind is listed again and only
the differences reach the store's listeners. Errors are retried with
exponential backoff; a malformed line or object is logged and skipped. None
of this ever ends the operator: only cancellation stops a watcher.

Right after the CRDs are applied the API answers 429 "storage is
(re)initializing" for a moment, and 404 until a CRD is served: both are
waited out at INFO level, so a clean first start logs no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
from collections.abc import AsyncIterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alert_contacts.domain.engine import BOT, CONTACT, SECRET
from alert_contacts.domain.engine import GROUP as GROUP_KIND
from alert_contacts.runtime.kube import ApiError, custom_path, describe_error, parse_json
from alert_contacts.runtime.store import Key, Store

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
YIELD_EVERY = 50  # objects taken in between two yields to the event loop
# The API server ends each watch after this long; the client reconnects from
# the last resourceVersion it saw (bookmarks keep that one fresh).
WATCH_SECONDS = 300
MAX_BACKOFF_SECONDS = 30.0
# Answers that mean "not yet" on a fresh control plane or CRD: logged at INFO
# while they are plausibly transient, at WARNING once they persist.
NOT_YET = {404, 429, 503}
NOT_YET_QUIET_FAILURES = 10


@dataclass(frozen=True)
class Resource:
    kind: str  # the store's kind
    path: str  # the cluster-wide collection
    field_selector: str | None = None


RESOURCES = (
    Resource(CONTACT, custom_path(CONTACT)),
    Resource(BOT, custom_path(BOT)),
    Resource(GROUP_KIND, custom_path(GROUP_KIND)),
    # Only Opaque Secrets can hold a bot's webhook URL or signing secret, but a
    # bot pointing at a Secret of another type must be told its type, not "not
    # found": Secrets are watched whatever their type, and of the others the store
    # keeps only the type (domain.records.secret_data), never their data. Helm's
    # release records are left out by the API server itself: they are the largest
    # Secrets in most clusters (up to 1 MiB each) and no bot points at one.
    Resource(SECRET, "/api/v1/secrets", field_selector="type!=helm.sh/release.v1"),
)


class Lister(Protocol):
    """The two calls a watcher makes (``runtime.kube.Kube``; a fake in unit tests)."""

    async def request(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = ...,
        body: Any = ..., content_type: str = ..., request_timeout: Any = ...,
    ) -> Any: ...

    def stream(self, path: str, query: Mapping[str, Any], read_timeout: float
               ) -> contextlib.AbstractAsyncContextManager[AsyncIterable[bytes]]: ...


class Gone(Exception):
    """The resourceVersion to resume from has expired: list again."""


class WatchEnded(Exception):
    """The watch stream reported an error other than Gone."""


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic garbage collector off while a page is taken in: storing a page
    allocates several objects per item, and the young collections they set off (about
    a seventh of the time a Contact takes) find nothing to free, since stored records
    form no cycles. Whatever the other tasks leave meanwhile is collected afterwards.
    Nested or concurrent uses leave it on as soon as the first one that turned it off ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _identity(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata")
    return (isinstance(meta, Mapping) and isinstance(meta.get("name"), str)
            and isinstance(meta.get("namespace"), str) and bool(meta["name"]))


class Watcher:
    """Keeps the store's view of one kind current, for as long as it runs."""

    def __init__(self, api: Lister, store: Store, resource: Resource,
                 page_size: int = PAGE_SIZE, watch_seconds: int = WATCH_SECONDS) -> None:
        self.api = api
        self.store = store
        self.resource = resource
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.lists = 0  # full listings made (1 + re-lists)

    @property
    def kind(self) -> str:
        return self.resource.kind

    def _query(self, **extra: Any) -> dict[str, Any]:
        query = dict(extra)
        if self.resource.field_selector:
            query["fieldSelector"] = self.resource.field_selector
        return query

    async def run(self) -> None:
        resource_version: str | None = None
        failures = 0
        while True:
            try:
                if resource_version is None:
                    resource_version = await self.list_all()
                resource_version = await self.watch(resource_version)
                failures = 0
            except Gone:
                logger.info("the %s watch's resourceVersion expired; listing again", self.kind)
                resource_version = None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                await asyncio.sleep(self._backoff(e, failures))

    def _backoff(self, error: Exception, failures: int) -> float:
        delay: float = min(MAX_BACKOFF_SECONDS, 0.25 * 2.0 ** min(failures - 1, 10))
        delay *= random.uniform(0.8, 1.2)
        if isinstance(error, ApiError):
            delay = max(delay, min(error.retry_after, MAX_BACKOFF_SECONDS))
        quiet = (isinstance(error, ApiError) and error.status in NOT_YET
                 and failures <= NOT_YET_QUIET_FAILURES)
        logger.log(
            logging.INFO if quiet else logging.WARNING,
            "%s %s failed (%s); retrying in %.1fs",
            "watching" if self.store.synced.is_set() else "listing",
            self.kind, describe_error(error), delay,
        )
        return delay

    async def _page(self, continue_token: str | None) -> Mapping[str, Any]:
        query = self._query(limit=self.page_size)
        if continue_token:
            query["continue"] = continue_token
        try:
            page = await self.api.request("GET", self.resource.path, query=query)
        except ApiError as e:
            if e.status == 410:  # the continue token expired mid-listing
                raise Gone from None
            raise
        return page if isinstance(page, Mapping) else {}

    async def list_all(self) -> str:
        """List every object of the kind in pages into the store; the listing's
        resourceVersion, to watch from.

        The next page is fetched while this one is taken in (validating a
        Contact costs about as much as the API server takes to send it), and
        the loop is yielded to every few objects so that probes and admission
        keep answering during a long listing.
        """
        keys: set[Key] = set()
        fetching = asyncio.ensure_future(self._page(None))
        try:
            while True:
                page = await fetching
                meta = page.get("metadata")
                meta = meta if isinstance(meta, Mapping) else {}
                continue_token = meta.get("continue") or None
                if continue_token is not None:
                    fetching = asyncio.ensure_future(self._page(continue_token))
                    await asyncio.sleep(0)  # the request goes out before the intake starts
                items = page.get("items")
                with _no_collection():
                    for count, item in enumerate(items if isinstance(items, list) else [], 1):
                        if isinstance(item, Mapping) and _identity(item):
                            keys.add(self.store.put(self.kind, item))
                        else:
                            logger.warning("skipped a malformed %s in a listing", self.kind)
                        if count % YIELD_EVERY == 0:
                            await asyncio.sleep(0)
                if not self.store.synced.is_set():
                    # What the first listing stores lives as long as the objects do: out
                    # of the cyclic collector's reach, which would otherwise walk all of it
                    # again and again (190 ms a full collection at 50,000 Contacts, in the
                    # middle of admission requests). Only before the first sync: a freeze
                    # also keeps whatever cyclic garbage exists at that moment. Later,
                    # runtime.heap freezes after each full collection instead.
                    gc.freeze()
                if continue_token is None:
                    break
        finally:
            if fetching.done() and not fetching.cancelled():
                fetching.exception()  # retrieved: a failed prefetch is not logged as lost
            fetching.cancel()
        self.store.retain_only(self.kind, keys)
        self.lists += 1
        self.store.mark_listed(self.kind)
        logger.debug("listed %d %s objects", len(keys), self.kind)
        return str(meta.get("resourceVersion") or "")

    async def watch(self, resource_version: str) -> str:
        """Follow changes from ``resource_version`` until the server ends the
        watch; the last resourceVersion seen."""
        query = self._query(
            watch="true", allowWatchBookmarks="true", timeoutSeconds=self.watch_seconds,
        )
        if resource_version:
            query["resourceVersion"] = resource_version
        try:
            async with self.api.stream(
                self.resource.path, query, read_timeout=self.watch_seconds + 30
            ) as lines:
                async for line in lines:
                    resource_version = self.handle(line, resource_version)
        except ApiError as e:
            if e.status == 410:
                raise Gone from None
            raise
        return resource_version

    def handle(self, line: bytes, resource_version: str) -> str:
        """Apply one watch event to the store; the resourceVersion to resume from."""
        if not line.strip():
            return resource_version
        try:
            event = parse_json(line)
        except ValueError:
            logger.warning("skipped a %s watch line that is not JSON", self.kind)
            return resource_version
        obj = event.get("object") if isinstance(event, Mapping) else None
        type_ = event.get("type") if isinstance(event, Mapping) else None
        if not isinstance(obj, Mapping):
            logger.warning("skipped a %s watch event without an object", self.kind)
            return resource_version
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise WatchEnded(f"watch error HTTP {obj.get('code')} {obj.get('reason')}")
        meta = obj.get("metadata")
        new_version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        if type_ != "BOOKMARK":
            if not _identity(obj):
                logger.warning("skipped a malformed %s in a %s watch event", self.kind, type_)
            elif type_ in ("ADDED", "MODIFIED"):
                self.store.put(self.kind, obj)
            elif type_ == "DELETED":
                self.store.delete(self.kind, obj)
            else:
                logger.warning("skipped a %s watch event of type %r", self.kind, type_)
        return new_version if isinstance(new_version, str) and new_version else resource_version


def start_watches(api: Lister, store: Store) -> list[asyncio.Task[None]]:
    """One watcher task per kind; cancel them to stop."""
    return [
        asyncio.create_task(Watcher(api, store, resource).run(), name=f"watch {resource.kind}")
        for resource in RESOURCES
    ]
