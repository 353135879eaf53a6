"""The delivery engine: Alertmanager notifications to DingTalk robots and email.

Per robot (one webhook, whichever groups name it) one queue sends in order and
never past DingTalk's 20 messages per 60 s (``domain.ratelimit``); when
messages pile up behind the limit they are merged rather than dropped. A
transient failure is retried with backoff within a bounded budget
(``domain.delivery.retry_delay``); a target that already got a notification
is not sent it again (``domain.dedup``). The HTTP answer follows
``domain.delivery.answer``. Outcomes are written to the objects' status on
change only (``domain.feedback``). Only the leader delivers; the robots' sends
of the last minute and the delivery keys go to the next leader through the Lease
(``DeliveryHandover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from alert_contacts import metrics
from alert_contacts.domain.alerts import Notification
from alert_contacts.domain.dedup import (
    DEFAULT_WINDOW,
    SEEN_ANNOTATION,
    SeenWindow,
    decode_seen,
    delivery_keys,
    encode_seen,
)
from alert_contacts.domain.delivery import (
    RETRY_BUDGET_SECONDS,
    Answer,
    BotTarget,
    GroupTargets,
    MemberContact,
    TargetResult,
    answer,
    bot_target,
    member_contact,
    resolve_targets,
    retry_delay,
    test_notification,
    worst,
)
from alert_contacts.domain.dingtalk import (
    MAX_MESSAGE_BYTES,
    DingTalkMessage,
    MessageJoiner,
    render_dingtalk,
)
from alert_contacts.domain.feedback import (
    bot_delivery_patch,
    group_delivery_patch,
    last_test,
    send_test_pending,
)
from alert_contacts.domain.mail import build_message, render_email
from alert_contacts.domain.notices import (
    Notice,
    NoticeThrottle,
    current_notices,
    failed_bots,
    notice_email,
    notice_message,
    recipients,
)
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.ratelimit import (
    HISTORY_ANNOTATION,
    SendHistory,
    decode_history,
    encode_history,
    next_send_at,
)
from alert_contacts.domain.records import ObjectRecord
from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime.dingtalk import DingTalkSender
from alert_contacts.runtime.lease import Predecessor
from alert_contacts.runtime.options import RunOptions, Templates
from alert_contacts.runtime.smtp import SmtpSender

logger = logging.getLogger(__name__)

Channel = Literal["dingtalk", "email"]
DINGTALK: Channel = "dingtalk"
EMAIL: Channel = "email"
NOTICE_PERIOD_SECONDS = 30.0
# DingTalk counts 20 messages per 60 s as they arrive; a second of margin absorbs the
# jitter between our clock and its (network, a slow step of this process).
RATE_WINDOW_SECONDS = 61.0
DINGTALK_TIMEOUT_SECONDS = 10.0
# Most queued messages joined into one send (each join is checked against 20,000 bytes).
MAX_MERGED = 100


class DingTalkSending(Protocol):
    async def send(self, url: str, secret: str | None, message: DingTalkMessage) -> SendOutcome:
        ...


class MailSending(Protocol):
    async def send(self, message: EmailMessage,
                   recipients: tuple[str, ...] | None = None) -> SendOutcome: ...


class StatusWriting(Protocol):
    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> bool: ...


# ---------------------------------------------------------------- what the watch holds


class ObjectView(Protocol):
    """What the engine reads from the operator's view of the cluster (``runtime.store``;
    the only place to change when that view changes)."""

    @property
    def contacts(self) -> Mapping[ObjectRef, ObjectRecord]: ...

    @property
    def bots(self) -> Mapping[ObjectRef, ObjectRecord]: ...

    @property
    def groups(self) -> Mapping[ObjectRef, ObjectRecord]: ...

    @property
    def secrets(self) -> Mapping[tuple[str, str], Mapping[str, str]]: ...


class QuotaOrder(Protocol):
    """The quota order as the decision engine keeps it (``domain.engine.DecisionEngine``).

    The system notices read how many objects hold a quota slot, and which wait
    beyond it, from here: scanning every object's status instead took 87 ms of
    the event loop at 50,000 Contacts, every 30 s.
    """

    def in_use(self) -> int:
        """Valid, unique Contacts and DingTalkBots: each needs a quota slot."""
        ...

    def waiting(self, after: int) -> ObjectRef | None:
        """The object at 0-based ``after`` in the quota order."""
        ...


def lookup_record(view: ObjectView, ref: ObjectRef) -> ObjectRecord | None:
    index = {"Contact": view.contacts, "DingTalkBot": view.bots,
             "ContactGroup": view.groups}[ref.kind]
    return index.get(ref)


def group_targets(view: ObjectView, namespace: str, name: str) -> GroupTargets | None:
    """The group's Ready bots and member contacts; None when there is no such group."""
    group = lookup_record(view, ObjectRef("ContactGroup", namespace, name))
    if group is None:
        return None
    return resolve_targets(group, view.contacts, view.bots, view.secrets)


# ---------------------------------------------------------------- one robot's queue


@dataclass
class _Item:
    message: DingTalkMessage
    url: str = field(repr=False)
    secret: str | None = field(repr=False)
    done: asyncio.Future[SendOutcome]
    started: float
    # Told the final outcome even when nobody awaits ``done`` any more (the request
    # timed out while the message was on its way): what went out is remembered.
    on_sent: Callable[[SendOutcome], None] | None = None
    attempt: int = 1
    not_before: float = 0.0


class RobotQueue:
    """Sends one robot's messages in order, within the rate limit, retrying transient
    failures; when several wait, they go merged into as few messages as fit."""

    def __init__(self, sender: DingTalkSending, clock: Callable[[], float],
                 budget: float = RETRY_BUDGET_SECONDS, limit: int = 20,
                 window: float = RATE_WINDOW_SECONDS,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self._sender = sender
        self._clock = clock
        self._leader = leader
        self._budget = budget
        self._limit = limit
        self._window = window
        self._sent: deque[float] = deque()
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    def inherit(self, sent: Sequence[float]) -> None:
        """Count ``sent`` as this robot's sends so far: what the previous leader handed
        over (it includes this replica's own, when it led before that one)."""
        self._sent = deque(sorted(sent))

    def sent_times(self) -> list[float]:
        return list(self._sent)

    def idle(self) -> bool:
        """Nothing waits or runs and no send is within the rate window: the queue may go
        (a new one for the robot starts with the same, empty, history)."""
        now = self._clock()
        return (not self._pending and (self._task is None or self._task.done())
                and all(t <= now - self._window for t in self._sent))

    def earliest_send(self) -> float:
        """When the next message may go, by the rate limit alone."""
        return next_send_at(self._sent, self._clock(), self._limit, self._window)

    def submit(self, target: BotTarget, message: DingTalkMessage,
               on_sent: Callable[[SendOutcome], None] | None = None,
               ) -> asyncio.Future[SendOutcome]:
        done: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(message, target.url, target.secret, done, self._clock(),
                                   on_sent))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dingtalk robot queue")
        self._wake.set()
        return done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._pending:
            if not item.done.done():
                item.done.cancel()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))

    def _batch(self, ready: list[_Item]) -> tuple[DingTalkMessage, list[_Item]]:
        """The first ready message, merged with those after it (same webhook and
        secret) as long as they still fit in one message."""
        first = ready[0]
        batch = [first]
        joiner = MessageJoiner(first.message)
        for item in ready[1:MAX_MERGED]:
            if (item.url, item.secret) != (first.url, first.secret):
                break
            if joiner.size_with(item.message) > MAX_MESSAGE_BYTES:
                break
            joiner.add(item.message)
            batch.append(item)
        return joiner.message(), batch

    async def _run(self) -> None:
        while self._pending:
            # A request that gave up (its answer timed out) is not sent late: Alertmanager
            # sends it again, and a late copy would then arrive twice.
            self._pending = [i for i in self._pending if not i.done.done()]
            if not self._pending:
                break
            now = self._clock()
            while self._sent and self._sent[0] <= now - self._window:
                self._sent.popleft()
            ready = [i for i in self._pending if i.not_before <= now]
            if not ready:
                await self._sleep(min(i.not_before for i in self._pending) - now)
                continue
            at = next_send_at(self._sent, now, self._limit, self._window)
            if at > now:
                await self._sleep(at - now)
                continue
            if not self._leader():
                # Another replica leads (and sends) now: what waits here is answered 503,
                # and Alertmanager's retry reaches the leader.
                self._give_up(SendOutcome("transient", "NotLeader", None,
                                          "this replica is no longer the leader"))
                continue
            # Merge only what waits: one message alone goes as rendered.
            message, batch = self._batch(ready) if len(ready) > 1 else (ready[0].message,
                                                                           ready[:1])
            self._sent.append(now)
            try:
                outcome = await self._sender.send(batch[0].url, batch[0].secret, message)
            except Exception as e:  # a bug in a sender must not leave requests waiting
                logger.exception("DingTalk sender failed unexpectedly")
                outcome = SendOutcome("transient", "InternalError", None, type(e).__name__)
            after = self._clock()
            retried = False
            for item in batch:
                delay = retry_delay(outcome, item.attempt, after - item.started, self._budget)
                if delay is not None:
                    retried = True
                    item.attempt += 1
                    item.not_before = after + delay
                    continue
                self._pending.remove(item)
                if item.on_sent is not None:
                    item.on_sent(outcome)
                if not item.done.done():
                    item.done.set_result(outcome)
            # Counted per message that went out (a merged one counts once).
            if outcome.kind == "ok":
                metrics.MESSAGES_SENT.labels(DINGTALK).inc()
            elif retried:
                metrics.MESSAGES_RETRIED.labels(DINGTALK, outcome.reason).inc()
            else:
                metrics.MESSAGES_FAILED.labels(DINGTALK, outcome.reason).inc()
        self._wake.clear()

    def _give_up(self, outcome: SendOutcome) -> None:
        for item in self._pending:
            if item.on_sent is not None:
                item.on_sent(outcome)
            if not item.done.done():
                item.done.set_result(outcome)
        self._pending = []


# ---------------------------------------------------------------- the engine


@dataclass(frozen=True)
class MailConfig:
    sender: MailSending
    from_address: str
    bcc: bool = True


class DeliveryEngine:
    def __init__(
        self,
        view: ObjectView,
        dingtalk: DingTalkSending,
        mail: MailConfig | None,
        kube: StatusWriting,
        tz: tzinfo,
        *,
        quota: int,
        quota_order: QuotaOrder,
        leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        budget: float = RETRY_BUDGET_SECONDS,
        templates: Templates | None = None,
        dedup_window: float = DEFAULT_WINDOW,
    ) -> None:
        self.view = view
        self.dingtalk = dingtalk
        self.mail = mail
        self.kube = kube
        self.tz = tz
        self.quota = quota
        self.quota_order = quota_order
        self.leader = leader
        # The robots' sends before this replica led, as its predecessor handed them over
        # through the Lease (DeliveryHandover): empty without leader election.
        self._inherited = SendHistory()
        self.clock = clock
        self.wall = wall
        self.budget = budget
        self.templates = templates or Templates()
        self.seen = SeenWindow(dedup_window)
        self.throttle = NoticeThrottle()
        self._queues: dict[str, RobotQueue] = {}
        # Delivery keys being sent right now -> what the send came to.
        self._sending: dict[frozenset[str], asyncio.Future[TargetResult]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._tests: set[tuple[ObjectRef, str]] = set()  # running
        # Answered here, in case a watch event older than our status write arrives late.
        self._answered: dict[ObjectRef, str] = {}
        self._told_no_smtp = False
        self._synced = False  # the view holds the initial listing
        self._written: dict[ObjectRef, dict[str, Any]] = {}  # status.delivery we wrote
        self._last_write: dict[ObjectRef, asyncio.Task[None]] = {}

    # -- receiver interface

    def is_leader(self) -> bool:
        return self.leader()

    def inherit(self, history: SendHistory) -> None:
        """About to lead after another holder of the Lease: its robots' recent sends
        count in their rate windows."""
        self._inherited = history
        for robot, queue in self._queues.items():
            queue.inherit(history.of(robot))

    def recent_sends(self) -> str:
        """The robots' recent sends, for the next leader (``encode_history``): every
        queue's, and what was inherited for robots this replica has not sent to."""
        robots = {robot: tuple(queue.sent_times()) for robot, queue in self._queues.items()}
        robots.update((robot, times) for robot, times in self._inherited.robots.items()
                      if robot not in robots)
        return encode_history(SendHistory(robots, self._inherited.others), self.clock(),
                              window=RATE_WINDOW_SECONDS)

    def has_group(self, namespace: str, name: str) -> bool:
        return lookup_record(self.view, ObjectRef("ContactGroup", namespace, name)) is not None

    async def deliver(self, namespace: str, group: str, notification: Notification) -> Answer:
        targets = group_targets(self.view, namespace, group)
        if targets is None:
            return Answer(404, f"no ContactGroup {namespace}/{group}")
        started = self.clock()
        self.seen.prune(started)
        jobs: dict[str, Awaitable[TargetResult]] = {}
        for bot in targets.bots:
            jobs[f"dingtalkbot/{bot.ref.name}"] = self._to_bot(bot, targets, notification)
        if targets.emails:
            jobs["email"] = self._to_mail(targets, notification)
        names = list(jobs)
        outcomes = await asyncio.gather(*jobs.values())
        results = dict(zip(names, outcomes, strict=True))
        if targets.bots:
            metrics.DELIVERY_SECONDS.labels(DINGTALK).observe(self.clock() - started)
        return answer(results)

    # -- DingTalk

    def _queue(self, bot: BotTarget) -> RobotQueue:
        queue = self._queues.get(bot.robot)
        if queue is None:
            queue = self._queues[bot.robot] = RobotQueue(self.dingtalk, self.clock, self.budget,
                                                         leader=self.leader)
            queue.inherit(self._inherited.of(bot.robot))
        return queue

    def _render(self, notification: Notification, mobiles: Sequence[str], *,
                test: bool = False) -> list[DingTalkMessage]:
        rendered = render_dingtalk(notification, mobiles, self.tz, test=test,
                                   template=self.templates.dingtalk)
        if rendered.template_error:
            logger.warning("DingTalk template failed, the built-in one was used: %s",
                           rendered.template_error)
        return rendered.messages

    async def send_to_bot(self, bot: BotTarget, messages: Sequence[DingTalkMessage],
                          on_ok: Callable[[], None] | None = None) -> SendOutcome:
        """Every message through the robot's queue; the bot's status records the outcome.
        ``on_ok`` runs once all of them went out, even if this call was cancelled."""
        queue = self._queue(bot)
        left = len(messages)

        def sent(outcome: SendOutcome) -> None:
            nonlocal left
            left -= outcome.kind == "ok"
            if left == 0 and on_ok is not None:
                on_ok()
        futures = [queue.submit(bot, m, sent) for m in messages]
        self._observe_queues()
        outcomes = list(await asyncio.gather(*futures))
        self._observe_queues()
        outcome = worst(outcomes)
        if outcome.kind != "ok":
            logger.warning("DingTalk delivery to %s: %s", bot.ref, outcome)
        self._record_bot(bot.ref, outcome)
        return outcome

    async def _once(self, channel: Channel, keys: frozenset[str],
                    send: Callable[[Callable[[], None]], Awaitable[SendOutcome]]) -> TargetResult:
        """Send unless the target already got these keys or is being sent them right now
        (Alertmanager's retry or an HA peer's copy while the first is on its way: wait
        for that one). ``send`` gets the callback that remembers the keys once sent."""
        while True:
            if keys and all(self.seen.seen(k, self.clock()) for k in keys):
                metrics.MESSAGES_SKIPPED.labels(channel, "duplicate").inc()
                return "duplicate"
            flight = self._sending.get(keys) if keys else None
            if flight is None:
                break
            await asyncio.wait([flight])
            if not flight.cancelled():
                theirs = flight.result()
                if theirs == "delivered":
                    metrics.MESSAGES_SKIPPED.labels(channel, "duplicate").inc()
                    return "duplicate"
                return theirs
            # The first request gave up: what it sent is remembered (look again), the rest
            # is sent from here.

        def remember() -> None:
            for key in keys:
                self.seen.remember(key, self.clock())
        mine: asyncio.Future[TargetResult] = asyncio.get_running_loop().create_future()
        if keys:
            self._sending[keys] = mine
        try:
            outcome = await send(remember)
            result: TargetResult = ("delivered" if outcome.kind == "ok" else
                                    "permanent" if outcome.kind == "permanent" else "transient")
            mine.set_result(result)
            return result
        finally:
            if not mine.done():
                mine.cancel()
            if self._sending.get(keys) is mine:
                del self._sending[keys]

    async def _to_bot(self, bot: BotTarget, targets: GroupTargets,
                      notification: Notification) -> TargetResult:
        async def send(remember: Callable[[], None]) -> SendOutcome:
            outcome = await self.send_to_bot(
                bot, self._render(notification, targets.mobiles), on_ok=remember)
            self._record_group(targets.ref, DINGTALK, outcome, f"via {bot.ref.name}")
            return outcome
        # Per robot and group: two groups sharing a robot each get their own message
        # (their own @-mentions) for the same groupKey.
        target = f"dingtalkbot:{bot.robot}:{targets.ref.namespace}/{targets.ref.name}"
        return await self._once(DINGTALK, delivery_keys(notification, target), send)

    def prune_queues(self) -> None:
        """Drop robot queues with nothing to send and no send within the rate window
        (robots of deleted or changed bots would otherwise stay for the process's life)."""
        for robot, queue in list(self._queues.items()):
            if queue.idle():
                del self._queues[robot]

    def _observe_queues(self) -> None:
        metrics.QUEUE_DEPTH.set(sum(q.depth for q in self._queues.values()))

    # -- email

    async def send_mail(self, recipients: Sequence[str], subject_source: Notification, *,
                        test: bool = False,
                        on_ok: Callable[[], None] | None = None) -> SendOutcome | None:
        """One message to all recipients, retried within the budget; None: no SMTP."""
        if self.mail is None:
            self.no_smtp("emails")
            return None
        rendered = render_email(subject_source, self.tz, test=test,
                                template=self.templates.email)
        if rendered.template_error:
            logger.warning("email template failed, the built-in one was used: %s",
                           rendered.template_error)
        message = build_message(self.mail.from_address, recipients, rendered, bcc=self.mail.bcc)
        return await self.send_prepared_mail(message, on_ok)

    async def send_prepared_mail(self, message: EmailMessage,
                                 on_ok: Callable[[], None] | None = None) -> SendOutcome:
        assert self.mail is not None
        started = self.clock()
        attempt = 1
        to: tuple[str, ...] | None = None  # all of the message's recipients
        while True:
            outcome = await self.mail.sender.send(message, to)
            if outcome.kind == "ok" and on_ok is not None:
                on_ok()  # before any other await: a cancelled request still remembers it
            delay = retry_delay(outcome, attempt, self.clock() - started, self.budget)
            if delay is None:
                break
            metrics.MESSAGES_RETRIED.labels(EMAIL, outcome.reason).inc()
            if outcome.retry_to:  # the others have it already
                to = outcome.retry_to
            attempt += 1
            await asyncio.sleep(delay)
        if outcome.kind == "ok":
            metrics.MESSAGES_SENT.labels(EMAIL).inc()
        else:
            metrics.MESSAGES_FAILED.labels(EMAIL, outcome.reason).inc()
            logger.warning("email delivery: %s", outcome)
        metrics.DELIVERY_SECONDS.labels(EMAIL).observe(self.clock() - started)
        return outcome

    async def _to_mail(self, targets: GroupTargets, notification: Notification) -> TargetResult:
        if self.mail is None:
            self.no_smtp("emails")
            return "skipped"

        async def send(remember: Callable[[], None]) -> SendOutcome:
            outcome = await self.send_mail(targets.emails, notification, on_ok=remember)
            assert outcome is not None  # SMTP is configured
            self._record_group(targets.ref, EMAIL, outcome,
                               f"to {len(targets.emails)} recipient(s)")
            return outcome
        target = f"email:{targets.ref.namespace}/{targets.ref.name}"
        return await self._once(EMAIL, delivery_keys(notification, target), send)

    def no_smtp(self, what: str, *, skipped: bool = True) -> None:
        """Count what SMTP's absence skips; log it once per process."""
        if skipped:
            metrics.MESSAGES_SKIPPED.labels(EMAIL, "smtp_not_configured").inc()
        if not self._told_no_smtp:
            self._told_no_smtp = True
            logger.warning("SMTP is not configured (ALERT_CONTACTS_SMTP_HOST): %s are not "
                           "sent (metric alert_contacts_messages_skipped)", what)

    # -- status feedback (on change only; never blocks the answer)

    def _in_background(self, work: Awaitable[Any], what: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except Exception as e:
                logger.warning("could not write %s: %s", what, type(e).__name__)
        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _write(self, ref: ObjectRef, patch: dict[str, Any]) -> None:
        """Patch ``ref``'s status after any earlier write to it (never out of order)."""
        before = self._last_write.get(ref)

        async def in_order() -> None:
            if before is not None:
                await asyncio.wait([before])
            if not self.leader():  # only the leader writes; the new one sees for itself
                self._written.pop(ref, None)
                return
            await self.kube.patch_status(ref, patch)
        task = self._in_background(in_order(), f"status.delivery of {ref}")
        self._last_write[ref] = task
        task.add_done_callback(
            lambda done: self._last_write.pop(ref, None) if self._last_write.get(ref) is done
            else None)

    def _delivery_seen(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        """status.delivery as we last wrote it, else as the watch shows it: an outcome
        written a moment ago is compared with, even before its echo arrives."""
        record = lookup_record(self.view, ref)
        if record is None:
            return None
        shown = record.status.get("delivery")
        written = self._written.get(ref)
        if written is None:
            return {"delivery": shown} if shown is not None else {}
        if ref.kind == "ContactGroup" and isinstance(shown, Mapping):
            return {"delivery": {**shown, **written}}
        return {"delivery": written}

    def _record_bot(self, ref: ObjectRef, outcome: SendOutcome) -> None:
        status = self._delivery_seen(ref)
        if status is None:
            return
        patch = bot_delivery_patch(status, outcome, self.wall())
        if patch is not None:
            self._written[ref] = patch["status"]["delivery"]
            self._write(ref, patch)

    def _record_group(self, ref: ObjectRef, channel: Channel, outcome: SendOutcome,
                      detail: str) -> None:
        status = self._delivery_seen(ref)
        if status is None:
            return
        patch = group_delivery_patch(status, channel, outcome, self.wall(), detail)
        if patch is not None:
            self._written[ref] = {**self._written.get(ref, {}), **patch["status"]["delivery"]}
            self._write(ref, patch)

    # -- test sends

    def request_test(self, ref: ObjectRef, value: str | None,
                     status: Mapping[str, Any]) -> bool:
        """Start a test send for an annotation value not yet answered; False if nothing
        to do (answered, already running, or this replica is not the leader)."""
        if value is None or not send_test_pending(value, status) or not self.leader():
            return False
        if (ref, value) in self._tests or self._answered.get(ref) == value:
            return False
        self._tests.add((ref, value))
        task = asyncio.create_task(self._run_test(ref, value), name=f"test send {ref}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    def on_change(self, kind: str, old: object, new: object) -> None:
        """The store's listener: a bot or group whose send-test annotation is not yet
        answered gets its test (quick: the send runs in a task); a deleted object's
        state here goes with it."""
        if new is None and isinstance(old, ObjectRecord):
            self._written.pop(old.ref, None)
            self._answered.pop(old.ref, None)
            return
        if (self._synced and kind in ("DingTalkBot", "ContactGroup")
                and isinstance(new, ObjectRecord) and new.send_test):
            self.request_test(new.ref, new.send_test, new.status)

    def scan_tests(self) -> None:
        """Every unanswered send-test annotation (after the initial listing, and now and
        then: a replica that becomes the leader picks up what waited)."""
        for record in [*self.view.bots.values(), *self.view.groups.values()]:
            if record.send_test:
                self.request_test(record.ref, record.send_test, record.status)

    async def tests_after_sync(
        self, synced: asyncio.Event, leading: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Once the view is complete and this replica leads (``leading`` returns
        then; ``Leadership.wait``): the tests that waited."""
        await synced.wait()
        self._synced = True
        if leading is not None:
            await leading()
        self.scan_tests()

    async def _run_test(self, ref: ObjectRef, value: str) -> None:
        try:
            ok, message = await self.test_send(ref)
            patch = {"status": {"lastTest": last_test(value, self.wall(), ok, message)}}
            logger.info("test send for %s (request %r): %s", ref, value,
                        "succeeded" if ok else "failed")
            if not self.leader():
                # Unanswered: the new leader's scan sends the test again and answers it.
                logger.info("test send for %s: not the leader any more, not recorded", ref)
                return
            await self.kube.patch_status(ref, patch)
            self._answered[ref] = value
        except Exception as e:
            logger.warning("test send for %s failed unexpectedly: %s", ref, type(e).__name__)
        finally:
            self._tests.discard((ref, value))

    async def test_send(self, ref: ObjectRef) -> tuple[bool, str]:
        """Send one marked test message to a bot, or to every bot and the emails of a group."""
        notification = test_notification(ref, self.wall())
        record = lookup_record(self.view, ref)
        if record is None:
            return False, f"{ref} is not in the operator's view yet"
        if ref.kind == "DingTalkBot":
            bot = bot_target(record, self.view.secrets)
            if bot is None:
                return False, "the bot is not Ready, so nothing was sent (see its Ready condition)"
            outcome = await self.send_to_bot(bot, self._render(notification, (), test=True))
            return outcome.kind == "ok", _describe(outcome)
        targets = group_targets(self.view, ref.namespace, ref.name)
        assert targets is not None
        parts: list[str] = []
        ok = True
        if not targets.bots and not targets.emails:
            return False, "the group has no Ready DingTalk bot and no Ready contact with an email"
        bot_jobs = [self.send_to_bot(bot, self._render(notification, targets.mobiles, test=True))
                    for bot in targets.bots]
        for bot, outcome in zip(targets.bots, await asyncio.gather(*bot_jobs), strict=True):
            ok = ok and outcome.kind == "ok"
            parts.append(f"dingtalkbot/{bot.ref.name}: {_describe(outcome)}")
        if targets.emails:
            mailed = await self.send_mail(targets.emails, notification, test=True)
            if mailed is None:
                ok = False
                parts.append("email: SMTP is not configured")
            else:
                ok = ok and mailed.kind == "ok"
                parts.append(f"email to {len(targets.emails)} recipient(s): {_describe(mailed)}")
        return ok, "; ".join(parts)

    # -- system notices

    async def notices_once(self) -> list[Notice]:
        """Send the notices that are due; returns them (for tests and the log)."""
        if not self.leader():
            return []
        in_use = self.quota_order.in_use()
        held = [ref for after in range(self.quota, in_use)
                if (ref := self.quota_order.waiting(after)) is not None]
        notices = current_notices(min(in_use, self.quota), self.quota, held,
                                  failed_bots(self.view.bots.values()))
        if not notices:
            return []
        if self.mail is None:
            metrics.NOTICES.labels("smtp_not_configured").inc(len(notices))
            self.no_smtp("system notices", skipped=False)
            return []
        due = self.throttle.due(notices, self.clock())
        if not due:
            return []
        people, bot_refs = recipients(self.view.contacts.values(), self.view.groups.values())
        emails = sorted({c.email for c in (member(self.view, r) for r in people)
                         if c is not None and c.email})
        secrets = self.view.secrets
        robots = [b for b in (bot_target(r, secrets) for r in
                              (lookup_record(self.view, ref) for ref in bot_refs) if r) if b]
        for notice in due:
            logger.info("system notice %s: to %d contact(s) and %d bot(s)",
                        notice.key, len(emails), len(robots))
            results: list[SendOutcome] = []
            if emails:
                results.append(await self.send_prepared_mail(notice_email(
                    notice, self.mail.from_address, emails, self.mail.bcc)))
            for robot in robots:
                results.append(await self.send_to_bot(robot, [notice_message(notice)]))
            sent = bool(results) and all(r.kind == "ok" for r in results)
            metrics.NOTICES.labels("sent" if sent else "failed").inc()
        return due

    async def run_notices(self, period: float = NOTICE_PERIOD_SECONDS) -> None:
        while True:
            try:
                self.prune_queues()
                if self._synced:  # a partial view would tell of quota and bots wrongly
                    self.scan_tests()
                    await self.notices_once()
            except Exception:
                logger.exception("system notices: a pass failed")
            await asyncio.sleep(period)

    def start(self) -> None:
        self._notices = asyncio.create_task(self.run_notices(), name="system notices")

    async def close(self) -> None:
        notices = getattr(self, "_notices", None)
        tasks = [t for t in (notices, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for queue in self._queues.values():
            await queue.close()
        # Awaited, so none is still running (or logs "Task was destroyed") after close.
        await asyncio.gather(*tasks, return_exceptions=True)
        close = getattr(self.dingtalk, "close", None)
        if close is not None:
            await close()


def member(view: ObjectView, ref: ObjectRef) -> MemberContact | None:
    record = lookup_record(view, ref)
    return None if record is None else member_contact(record)


def _describe(outcome: SendOutcome) -> str:
    if outcome.kind == "ok":
        return "delivered"
    code = f" (code {outcome.code})" if outcome.code is not None else ""
    detail = f": {outcome.message}" if outcome.message else ""
    return f"failed, {outcome.reason}{code}{detail}"


def inherited_history(predecessor: Predecessor) -> SendHistory:
    """The robots' sends a new leader counts, from the Lease it takes over: those its
    predecessor recorded, plus a full window for every robot at the moment until which
    that one may have sent unrecorded (after a crash; none after a clean release)."""
    history = decode_history(predecessor.annotations.get(HISTORY_ANNOTATION),
                             predecessor.observed_at)
    if history is None:
        # Nothing readable. Without a Lease nobody led; when the holder may have acted
        # until a known moment, it is covered below; otherwise (a release by a version
        # that wrote no history) any robot may have had its 20 just before.
        unknown = predecessor.found and predecessor.acted_until is None
        history = SendHistory(others=predecessor.observed_at if unknown else None)
    return history.with_unknown_until(predecessor.acted_until)


class DeliveryHandover:
    """Delivery's part of the Lease handover (``runtime.lease.Handover``). The leader
    keeps in the Lease its robots' recent sends, so that its successor neither breaks
    DingTalk's 20-a-minute limit nor waits out a minute it knows nothing of, and the
    delivery keys it remembers, so that a retry of what it delivered is not sent again."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self.engine = engine

    def annotations(self) -> Mapping[str, str]:
        now = self.engine.clock()
        return {HISTORY_ANNOTATION: self.engine.recent_sends(),
                SEEN_ANNOTATION: encode_seen(self.engine.seen.remembered(now), now)}

    def took_over(self, predecessor: Predecessor) -> None:
        history = inherited_history(predecessor)
        seen = decode_seen(predecessor.annotations.get(SEEN_ANNOTATION),
                           predecessor.observed_at) or []
        if predecessor.found:
            logger.info("taking over delivery: %d robot(s) sent to in the last minute%s; "
                        "%d delivery key(s) remembered", len(history.robots),
                        "" if history.others is None else
                        "; any robot may have had its 20 messages until"
                        f" {max(0.0, self.engine.clock() - history.others):.1f}s ago",
                        len(seen))
        self.engine.inherit(history)
        for key, remembered_at in seen:
            self.engine.seen.remember(key, remembered_at)


def start_delivery(options: RunOptions, view: ObjectView, quota_order: QuotaOrder,
                   kube: StatusWriting, leader: Callable[[], bool]) -> DeliveryEngine:
    """The engine from the run options, with its system-notice loop running; it
    delivers, sends tests and notices only while ``leader()`` is true."""
    delivery = options.delivery
    settings = delivery.settings
    sender = DingTalkSender(options.settings.dingtalk_hosts, settings.extra_ca_file,
                            timeout=DINGTALK_TIMEOUT_SECONDS)
    mail = None
    if delivery.smtp is not None:
        mail = MailConfig(SmtpSender(delivery.smtp, settings.extra_ca_file),
                          delivery.smtp.sender, delivery.bcc)
    engine = DeliveryEngine(view, sender, mail, kube, settings.timezone,
                            quota=options.settings.quota, quota_order=quota_order,
                            leader=leader,
                            templates=delivery.templates,
                            dedup_window=options.receiver.dedup_window)
    if mail is None:  # said once, here, rather than at the first email not sent
        engine.no_smtp("emails and system notices", skipped=False)
    engine.start()
    return engine
