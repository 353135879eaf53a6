"""The delivery engine with fakes only at the network edge (DingTalk, SMTP, the API server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alert_contacts.domain.alerts import parse_notification
from alert_contacts.domain.delivery import BotTarget
from alert_contacts.domain.dingtalk import DingTalkMessage
from alert_contacts.domain.engine import engine_of
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.records import record_of
from alert_contacts.domain.types import ObjectRef
from alert_contacts.runtime.delivery import DeliveryEngine, DeliveryHandover, MailConfig, RobotQueue
from alert_contacts.runtime.lease import Predecessor
from alert_contacts.settings import Settings

URL_A = "https://oapi.dingtalk.com/robot/send?access_token=" + "a" * 64
URL_B = "https://oapi.dingtalk.com/robot/send?access_token=" + "b" * 64
READY = [{"type": "Ready", "status": "True", "reason": "Accepted"},
         {"type": "WithinQuota", "status": "True", "reason": "WithinQuota"}]
OK = SendOutcome("ok", "Delivered", 0, "ok")
BUSY = SendOutcome("transient", "ServerError", 500, "HTTP 500")
KEYWORD = SendOutcome("permanent", "KeywordMissing", 310000, "keywords not in content")


def payload(status: str = "firing", fingerprint: str = "f1") -> bytes:
    import json
    return json.dumps({
        "version": "4", "status": status, "receiver": "r", "groupKey": "g",
        "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{"status": status, "labels": {"alertname": "DiskFull"},
                    "annotations": {"summary": "disk full"},
                    "startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom", "fingerprint": fingerprint}],
    }).encode()


@dataclass
class FakeDingTalk:
    script: dict[str, list[SendOutcome]] = field(default_factory=dict)  # url -> outcomes
    sent: list[tuple[float, str, DingTalkMessage]] = field(default_factory=list)

    async def send(self, url: str, secret: str | None, message: DingTalkMessage) -> SendOutcome:
        self.sent.append((time.monotonic(), url, message))
        outcomes = self.script.get(url) or [OK]
        return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]


@dataclass
class FakeMail:
    outcomes: list[SendOutcome] = field(default_factory=lambda: [OK])
    sent: list[EmailMessage] = field(default_factory=list)
    recipients: list[tuple[str, ...] | None] = field(default_factory=list)

    async def send(self, message: EmailMessage,
                   recipients: tuple[str, ...] | None = None) -> SendOutcome:
        self.sent.append(message)
        self.recipients.append(recipients)
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


@dataclass
class FakeKube:
    patches: list[tuple[ObjectRef, dict[str, Any]]] = field(default_factory=list)

    async def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> bool:
        self.patches.append((ref, patch))
        return True


@dataclass
class View:
    """What runtime.store holds: records by reference, Secret values by (namespace, name)."""

    contacts: dict[Any, Any] = field(default_factory=dict)
    bots: dict[Any, Any] = field(default_factory=dict)
    groups: dict[Any, Any] = field(default_factory=dict)
    secrets: dict[Any, Any] = field(default_factory=dict)

    def add(self, kind: str, name: str, spec: dict[str, Any], **status: Any) -> None:
        record = record_of(kind, {"metadata": {"name": name, "namespace": "team", "uid": name},
                                  "spec": spec, "status": {"conditions": READY, **status}})
        index = {"Contact": self.contacts, "DingTalkBot": self.bots,
                 "ContactGroup": self.groups}[kind]
        index[record.ref] = record


def cluster(bots: tuple[str, ...] = ("a",)) -> View:
    view = View()
    urls = {"a": URL_A, "b": URL_B}
    for name in bots:
        view.add("DingTalkBot", name, {"webhook": {"url": urls[name]}})
    view.add("Contact", "alice", {"email": "alice@example.com", "systemNotifications": True},
             normalized={"email": "alice@example.com", "mobile": "+8613800138000"})
    view.add("ContactGroup", "sre", {"contacts": ["alice"], "dingTalkBots": list(bots)})
    return view


# For engines whose tests send no system notices: an empty quota order.
NO_NOTICES = engine_of(Settings(), [])


def engine(view: View, dingtalk: FakeDingTalk, mail: FakeMail | None = None,
           kube: FakeKube | None = None, budget: float = 5.0, quota: int = 100) -> DeliveryEngine:
    # The quota order as the reconciler's decision engine keeps it for the same objects.
    order = engine_of(Settings(quota=quota), [*view.contacts.values(), *view.bots.values()])
    return DeliveryEngine(view, dingtalk, MailConfig(mail, "am@example.com") if mail else None,
                          kube or FakeKube(), ZoneInfo("Asia/Shanghai"), quota=quota,
                          quota_order=order, budget=budget)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_notification_reaches_bots_with_mentions_and_email_once() -> None:
    view, dingtalk, mail, kube = cluster(), FakeDingTalk(), FakeMail(), FakeKube()

    async def main() -> None:
        subject = engine(view, dingtalk, mail, kube)
        first = await subject.deliver("team", "sre", parse_notification(payload()))
        assert first.status == 200, first.summary
        again = await subject.deliver("team", "sre", parse_notification(payload()))
        assert again.status == 200 and "duplicate" in again.summary
        resolved = await subject.deliver("team", "sre", parse_notification(payload("resolved")))
        assert resolved.status == 200 and "delivered" in resolved.summary
        await settle()
    run(main)
    assert len(dingtalk.sent) == 2 and len(mail.sent) == 2  # firing, resolved; no repeat
    message = dingtalk.sent[0][2]
    assert message.at_mobiles == ("13800138000",) and "@13800138000" in message.text
    assert mail.sent[0]["Bcc"] == "alice@example.com"
    written = {(ref.kind, tuple(patch["status"]["delivery"])) for ref, patch in kube.patches}
    assert ("DingTalkBot", ("time", "result", "reason", "code", "message")) in written
    assert ("ContactGroup", ("dingtalk",)) in written and ("ContactGroup", ("email",)) in written


def test_transient_failures_are_retried_within_the_request() -> None:
    dingtalk = FakeDingTalk({URL_A: [BUSY, OK]})

    async def main() -> None:
        answer = await engine(cluster(), dingtalk).deliver(
            "team", "sre", parse_notification(payload()))
        assert answer.status == 200
    run(main)
    assert len(dingtalk.sent) == 2


def test_a_lasting_transient_failure_answers_503_and_the_retry_skips_who_got_it() -> None:
    dingtalk = FakeDingTalk({URL_B: [BUSY, OK]})  # budget 0.5 s: no in-request retry

    async def main() -> None:
        subject = engine(cluster(("a", "b")), dingtalk, budget=0.5)
        first = await subject.deliver("team", "sre", parse_notification(payload()))
        assert first.status == 503 and "dingtalkbot/b" in first.summary
        retry = await subject.deliver("team", "sre", parse_notification(payload()))
        assert retry.status == 200, retry.summary
    run(main)
    to_a = [s for s in dingtalk.sent if s[1] == URL_A]
    assert len(to_a) == 1  # bot a had it already: Alertmanager's retry does not repeat it


def test_a_permanent_failure_is_final_and_recorded_on_the_bot() -> None:
    dingtalk, kube = FakeDingTalk({URL_A: [KEYWORD]}), FakeKube()

    async def main() -> None:
        answer = await engine(cluster(), dingtalk, kube=kube).deliver(
            "team", "sre", parse_notification(payload()))
        assert answer.status == 200 and "permanent" in answer.summary
        await settle()
    run(main)
    assert len(dingtalk.sent) == 1
    [bot_patch] = [p for ref, p in kube.patches if ref.kind == "DingTalkBot"]
    assert bot_patch["status"]["delivery"]["reason"] == "KeywordMissing"
    assert URL_A not in str(kube.patches)


def test_the_rate_limit_is_never_exceeded_and_nothing_is_dropped() -> None:
    dingtalk = FakeDingTalk()
    big = "x" * 12_000  # two of these do not fit in one message: no merging

    async def main() -> None:
        queue = RobotQueue(dingtalk, time.monotonic, budget=5.0, limit=3, window=0.4)
        target = BotTarget(ObjectRef("DingTalkBot", "n", "b"), URL_A)
        futures = [queue.submit(target, DingTalkMessage(f"m{i}", big)) for i in range(8)]
        outcomes = await asyncio.gather(*futures)
        assert all(o.kind == "ok" for o in outcomes)
    run(main)
    times = [t for t, _, _ in dingtalk.sent]
    assert len(times) == 8
    # The queue keeps the schedule by the time it decides to send; the fake notes the
    # time a moment later, by as much as a busy machine delays a step. 50 ms of slack
    # still fails a queue without the limit (its 8 sends take a few ms).
    assert all(times[i + 3] - times[i] >= 0.4 - 0.05 for i in range(len(times) - 3))
    assert [m.title for _, _, m in dingtalk.sent] == [f"m{i}" for i in range(8)]


def sent_metric() -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("alert_contacts_messages_sent_total",
                                     {"channel": "dingtalk"}) or 0.0


def test_messages_waiting_behind_the_limit_are_merged() -> None:
    dingtalk = FakeDingTalk()
    before = sent_metric()

    async def main() -> None:
        queue = RobotQueue(dingtalk, time.monotonic, budget=5.0, limit=2, window=0.3)
        target = BotTarget(ObjectRef("DingTalkBot", "n", "b"), URL_A)
        futures = [queue.submit(target, DingTalkMessage(f"m{i}", f"alert {i}"))
                   for i in range(12)]
        await asyncio.gather(*futures)
    run(main)
    texts = "\n".join(m.text for _, _, m in dingtalk.sent)
    assert len(dingtalk.sent) < 12
    assert all(f"alert {i}" in texts for i in range(12))
    assert sent_metric() - before == len(dingtalk.sent)  # a merged message counts once


def test_a_test_send_is_recorded_once_per_request() -> None:
    view, dingtalk, kube = cluster(), FakeDingTalk(), FakeKube()
    ref = ObjectRef("DingTalkBot", "team", "a")

    async def main() -> None:
        subject = engine(view, dingtalk, kube=kube)
        assert subject.request_test(ref, "1", {})
        assert not subject.request_test(ref, "1", {})  # already running
        await asyncio.gather(*subject._background)
        assert not subject.request_test(ref, "1", {})  # answered
    run(main)
    assert len(dingtalk.sent) == 1
    [(written_ref, patch)] = [(r, p) for r, p in kube.patches if "lastTest" in p["status"]]
    assert written_ref == ref
    assert patch["status"]["lastTest"]["request"] == "1"
    assert patch["status"]["lastTest"]["result"] == "Succeeded"
    assert "test" in dingtalk.sent[0][2].text.lower()


def test_a_group_test_reports_every_channel() -> None:
    view, dingtalk, mail = cluster(("a", "b")), FakeDingTalk({URL_B: [KEYWORD]}), FakeMail()

    async def main() -> None:
        ok, message = await engine(view, dingtalk, mail).test_send(
            ObjectRef("ContactGroup", "team", "sre"))
        assert not ok
        assert "dingtalkbot/a: delivered" in message and "KeywordMissing" in message
        assert "email to 1 recipient(s): delivered" in message
    run(main)


def test_system_notices_go_once_an_hour_and_not_without_smtp() -> None:
    view, dingtalk, mail = cluster(), FakeDingTalk(), FakeMail()

    async def main() -> None:
        without = engine(view, dingtalk, None, quota=2)
        assert await without.notices_once() == []
        subject = engine(view, dingtalk, mail, quota=2)  # 2 of 2 used: 100%
        sent = await subject.notices_once()
        assert [n.key for n in sent] == ["quota"]
        assert await subject.notices_once() == []
    run(main)
    assert len(mail.sent) == 1 and "quota" in str(mail.sent[0]["Subject"])
    assert len(dingtalk.sent) == 1  # the bot of alice's group


def test_objects_beyond_the_quota_get_notices_from_the_quota_order() -> None:
    # Every status in the view still says Ready (the reconciler has not written
    # yet); the decision engine's order says who is beyond a quota of 1.
    view, dingtalk, mail = cluster(), FakeDingTalk(), FakeMail()

    async def main() -> None:
        subject = engine(view, dingtalk, mail, quota=1)
        waiting = subject.quota_order.waiting(1)
        assert waiting is not None
        sent = await subject.notices_once()
        assert sorted(n.key for n in sent) == [
            "held:" + f"{waiting.kind}/{waiting.namespace}/{waiting.name}", "quota"]
    run(main)
    assert "(1/1)" in str(mail.sent[0]["Subject"])


def test_a_replica_that_is_not_the_leader_sends_no_tests_or_notices() -> None:
    view, dingtalk, mail = cluster(), FakeDingTalk(), FakeMail()

    async def main() -> None:
        subject = engine(view, dingtalk, mail, quota=1)
        subject.leader = lambda: False
        assert not subject.request_test(ObjectRef("DingTalkBot", "team", "a"), "1", {})
        assert await subject.notices_once() == []
    run(main)
    assert dingtalk.sent == [] and mail.sent == []


def test_outcomes_are_written_on_change_in_order_even_before_the_watch_echoes_them() -> None:
    view, kube = cluster(), FakeKube()
    dingtalk = FakeDingTalk({URL_A: [KEYWORD, OK, OK]})

    async def main() -> None:
        subject = engine(view, dingtalk, kube=kube)
        for fingerprint in ("f1", "f2", "f3"):  # the view never shows our writes
            await subject.deliver("team", "sre",
                                  parse_notification(payload(fingerprint=fingerprint)))
        await asyncio.gather(*subject._background)
    run(main)
    results = [p["status"]["delivery"]["result"] for ref, p in kube.patches
               if ref.kind == "DingTalkBot"]
    assert results == ["Failed", "Delivered"]  # the third, same outcome, writes nothing


def test_a_message_whose_request_gave_up_is_not_sent_late() -> None:
    dingtalk = FakeDingTalk()

    async def main() -> None:
        queue = RobotQueue(dingtalk, time.monotonic, budget=5.0, limit=1, window=1.0)
        target = BotTarget(ObjectRef("DingTalkBot", "n", "b"), URL_A)
        first = queue.submit(target, DingTalkMessage("first", "x" * 15_000))
        late = queue.submit(target, DingTalkMessage("late", "y" * 15_000))
        await first
        late.cancel()  # the request waiting for it timed out
        await asyncio.sleep(1.3)  # past the moment it would have gone
    run(main)
    assert [m.title for _, _, m in dingtalk.sent] == ["first"]


def test_send_test_annotations_reach_the_engine_through_the_store_listener() -> None:
    view, dingtalk, kube = cluster(), FakeDingTalk(), FakeKube()
    annotated = record_of("DingTalkBot", {
        "metadata": {"name": "a", "namespace": "team", "uid": "a",
                     "annotations": {"alerting.contacts.dev/send-test": "v1"}},
        "spec": {"webhook": {"url": URL_A}}, "status": {"conditions": READY}})
    assert annotated.send_test == "v1"

    async def main() -> None:
        subject = engine(view, dingtalk, kube=kube)
        subject.on_change("DingTalkBot", None, annotated)  # before the initial listing: waits
        assert dingtalk.sent == []
        view.bots[annotated.ref] = annotated
        synced = asyncio.Event()
        synced.set()
        await subject.tests_after_sync(synced)  # picks up what waited
        subject.on_change("DingTalkBot", None, annotated)  # the same value again: nothing
        await asyncio.gather(*subject._background)
    run(main)
    assert len(dingtalk.sent) == 1
    assert [p["status"]["lastTest"]["request"] for _, p in kube.patches
            if "lastTest" in p["status"]] == ["v1"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_interval_reminder_after_the_dedup_window_is_delivered() -> None:
    """Alertmanager's repeat_interval reminder is the same payload again; past the
    dedup window (10 min by default, about AM's retry horizon) it goes out."""
    dingtalk, clock = FakeDingTalk(), FakeClock()

    async def main() -> None:
        subject = DeliveryEngine(cluster(), dingtalk, None, FakeKube(), ZoneInfo("Asia/Shanghai"),
                                 quota=100, quota_order=NO_NOTICES, budget=5.0, clock=clock)
        assert (await subject.deliver("team", "sre", parse_notification(payload()))).status == 200
        clock.now += 60  # Alertmanager's retry: a duplicate
        again = await subject.deliver("team", "sre", parse_notification(payload()))
        assert "duplicate" in again.summary
        clock.now += 30 * 60  # repeat_interval 30m: a reminder, sent
        reminder = await subject.deliver("team", "sre", parse_notification(payload()))
        assert "delivered" in reminder.summary, reminder.summary
        short = DeliveryEngine(cluster(), FakeDingTalk(), None, FakeKube(),
                               ZoneInfo("Asia/Shanghai"), quota=100, quota_order=NO_NOTICES,
                               clock=clock, dedup_window=30.0)
        assert short.seen.ttl == 30.0
    run(main)
    assert len(dingtalk.sent) == 2


@dataclass
class SlowDingTalk(FakeDingTalk):
    delay: float = 0.2

    async def send(self, url: str, secret: str | None, message: DingTalkMessage) -> SendOutcome:
        await asyncio.sleep(self.delay)
        return await super().send(url, secret, message)


@dataclass
class SlowMail(FakeMail):
    async def send(self, message: EmailMessage,
                   recipients: tuple[str, ...] | None = None) -> SendOutcome:
        await asyncio.sleep(0.2)
        return await super().send(message, recipients)


def test_the_same_notification_arriving_twice_at_once_is_sent_once() -> None:
    dingtalk, mail = SlowDingTalk(), SlowMail()

    async def main() -> None:
        subject = engine(cluster(), dingtalk, mail)
        first, second = await asyncio.gather(
            subject.deliver("team", "sre", parse_notification(payload())),
            subject.deliver("team", "sre", parse_notification(payload())))
        assert first.status == second.status == 200, (first.summary, second.summary)
    run(main)
    assert len(mail.sent) == 1
    # Not twice in one message either (the queue merges what waits).
    assert [m.text.count("disk full") for _, _, m in dingtalk.sent] == [1]


def test_a_message_sent_after_its_request_timed_out_is_remembered() -> None:
    dingtalk = SlowDingTalk()

    async def main() -> None:
        subject = engine(cluster(), dingtalk)
        try:
            async with asyncio.timeout(0.1):  # the receiver's request timeout, mid-send
                await subject.deliver("team", "sre", parse_notification(payload()))
        except TimeoutError:
            pass
        await asyncio.sleep(0.3)  # the queue's send completes
        retry = await subject.deliver("team", "sre", parse_notification(payload()))
        assert "duplicate" in retry.summary, retry.summary
    run(main)
    assert len(dingtalk.sent) == 1


def test_two_groups_sharing_a_robot_both_get_the_notification() -> None:
    """Two webhook_configs of one Alertmanager receiver carry the same groupKey; each
    group's message (with its own @-mentions) goes out."""
    view, dingtalk = cluster(), FakeDingTalk()
    view.add("ContactGroup", "ops", {"contacts": ["alice"], "dingTalkBots": ["a"]})

    async def main() -> None:
        subject = engine(view, dingtalk)
        for group in ("sre", "ops"):
            answer = await subject.deliver("team", group, parse_notification(payload()))
            assert "delivered" in answer.summary, answer.summary
    run(main)
    assert len(dingtalk.sent) == 2


def test_a_queue_that_is_not_the_leaders_fails_its_messages_transiently() -> None:
    dingtalk = FakeDingTalk()

    async def main() -> None:
        queue = RobotQueue(dingtalk, time.monotonic, budget=5.0, leader=lambda: False)
        target = BotTarget(ObjectRef("DingTalkBot", "n", "b"), URL_A)
        outcome = await queue.submit(target, DingTalkMessage("t", "x"))
        assert (outcome.kind, outcome.reason) == ("transient", "NotLeader")
    run(main)
    assert dingtalk.sent == []


def successor_of(predecessor: Predecessor, clock: FakeClock) -> DeliveryEngine:
    subject = DeliveryEngine(cluster(), FakeDingTalk(), None, FakeKube(),
                             ZoneInfo("Asia/Shanghai"), quota=100, quota_order=NO_NOTICES,
                             clock=clock)
    DeliveryHandover(subject).took_over(predecessor)
    return subject


def test_a_successor_counts_the_sends_its_predecessor_handed_over_and_no_more() -> None:
    clock = FakeClock()
    bot_a = BotTarget(ObjectRef("DingTalkBot", "team", "a"), URL_A)
    bot_b = BotTarget(ObjectRef("DingTalkBot", "team", "b"), URL_B)

    async def main() -> None:
        first = DeliveryEngine(cluster(), FakeDingTalk(), None, FakeKube(),
                               ZoneInfo("Asia/Shanghai"), quota=100, quota_order=NO_NOTICES,
                               clock=clock)
        sent_at = clock.now
        for i in range(20):  # robot a's whole minute, one message at a time
            assert (await first.send_to_bot(bot_a, [DingTalkMessage(f"m{i}", "x")])).kind == "ok"
        written = DeliveryHandover(first).annotations()
        clock.now += 1  # the successor reads the Lease a second later
        second = successor_of(Predecessor(True, written, clock.now, None), clock)
        assert second._queue(bot_a).earliest_send() == pytest.approx(sent_at + 1 + 61.0)
        assert second._queue(bot_b).earliest_send() == clock.now  # nothing went to b
        # Handed on again, without sending: the third still knows of robot a's minute.
        third = successor_of(Predecessor(True, DeliveryHandover(second).annotations(),
                                         clock.now, None), clock)
        assert third._queue(bot_a).earliest_send() == pytest.approx(sent_at + 1 + 61.0)
        # The first leads again after the third crashed: its existing queue for robot a
        # takes the handed-over view, and every robot counts the third's last moments.
        DeliveryHandover(first).took_over(Predecessor(True, DeliveryHandover(third).annotations(),
                                                   clock.now, clock.now - 0.5))
        assert first._queue(bot_a).sent_times()[-1] == pytest.approx(sent_at + 1)
        assert first._queue(bot_a).earliest_send() == pytest.approx(sent_at + 1 + 61.0)
        assert first._queue(bot_b).earliest_send() == pytest.approx(clock.now - 0.5 + 61.0)
        await first.close()
    run(main)


def test_a_retry_that_reaches_the_next_leader_skips_what_the_first_delivered() -> None:
    dingtalk = FakeDingTalk({URL_B: [BUSY]})  # robot b keeps failing: Alertmanager retries

    async def main() -> None:
        first = engine(cluster(("a", "b")), dingtalk, budget=0.5)
        answer = await first.deliver("team", "sre", parse_notification(payload()))
        assert answer.status == 503 and "dingtalkbot/b" in answer.summary
        written = DeliveryHandover(first).annotations()
        await first.close()
        second = engine(cluster(("a", "b")), dingtalk, budget=0.5)
        DeliveryHandover(second).took_over(Predecessor(True, written, time.monotonic(), None))
        dingtalk.script[URL_B] = [OK]
        retry = await second.deliver("team", "sre", parse_notification(payload()))
        assert retry.status == 200, retry.summary
        await second.close()
    run(main)
    assert [url for _, url, _ in dingtalk.sent].count(URL_A) == 1  # not again from the second


def test_what_a_new_leader_assumes_without_a_readable_history() -> None:
    clock = FakeClock()
    bot = BotTarget(ObjectRef("DingTalkBot", "team", "a"), URL_A)
    now = clock.now
    # A fresh install: nobody led, nothing to wait for.
    assert successor_of(Predecessor(False, {}, now, None), clock)._queue(
        bot).earliest_send() == now
    # The holder crashed: it may have sent anything until its renew deadline.
    assert successor_of(Predecessor(True, {}, now - 5, now - 3), clock)._queue(
        bot).earliest_send() == now - 3 + 61.0
    # A release by a version that wrote no history: any robot's last minute may be full.
    assert successor_of(Predecessor(True, {}, now, None), clock)._queue(
        bot).earliest_send() == now + 61.0
    # A crash long ago (by the wall clock): its unrecorded sends are out of the window.
    assert successor_of(Predecessor(True, {}, now, now - 70), clock)._queue(
        bot).earliest_send() == now


def test_a_replica_that_lost_the_lease_mid_send_writes_no_status() -> None:
    view, dingtalk, kube, leading = cluster(), SlowDingTalk(), FakeKube(), [True]
    ref = ObjectRef("DingTalkBot", "team", "a")

    async def main() -> None:
        subject = DeliveryEngine(view, dingtalk, None, kube, ZoneInfo("Asia/Shanghai"),
                                 quota=100, quota_order=NO_NOTICES, budget=5.0,
                                 leader=lambda: leading[0])
        assert subject.request_test(ref, "1", {})
        await asyncio.sleep(0.1)  # the message is on its way
        leading[0] = False
        await asyncio.sleep(0.3)
        await asyncio.gather(*subject._background)
    run(main)
    assert len(dingtalk.sent) == 1
    assert kube.patches == []  # neither status.delivery nor status.lastTest


def test_recipients_refused_for_now_are_retried_alone_within_the_request() -> None:
    greylisted = SendOutcome("transient", "SmtpRejected", 450, "1 refused for now",
                             retry_to=("alice@example.com",))
    mail = FakeMail([greylisted, OK])

    async def main() -> None:
        answer = await engine(cluster(), FakeDingTalk(), mail).deliver(
            "team", "sre", parse_notification(payload()))
        assert answer.status == 200, answer.summary
    run(main)
    assert mail.recipients == [None, ("alice@example.com",)]


def test_a_batch_is_sized_with_a_running_count(monkeypatch: Any) -> None:
    """100 small queued messages: one pass over them, not a re-merge per added item."""
    from alert_contacts.domain import dingtalk as module
    calls = 0
    real = module.merge_messages

    def counting(messages: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(messages)
    monkeypatch.setattr("alert_contacts.runtime.delivery.merge_messages", counting,
                        raising=False)

    async def main() -> None:
        queue = RobotQueue(FakeDingTalk(), time.monotonic)
        target = BotTarget(ObjectRef("DingTalkBot", "n", "b"), URL_A)
        for i in range(100):
            queue.submit(target, DingTalkMessage(f"t{i}", f"alert {i}"))
        message, batch = queue._batch(list(queue._pending))
        assert len(batch) == 100 and message.text.count("alert ") == 100
        await queue.close()
    run(main)
    assert calls == 0


def test_close_waits_for_the_tasks_it_cancels() -> None:
    async def main() -> None:
        subject = engine(cluster(), FakeDingTalk())
        subject.start()
        stopped = asyncio.Event()

        async def write() -> None:
            try:
                await asyncio.sleep(30)
            finally:
                await asyncio.sleep(0.05)  # cleanup that takes a moment
                stopped.set()
        subject._in_background(write(), "a status write")
        await asyncio.sleep(0)
        await subject.close()
        assert stopped.is_set() and subject._notices.done()
    run(main)


def test_a_deleted_object_leaves_nothing_behind() -> None:
    view, dingtalk, kube = cluster(), FakeDingTalk({URL_A: [KEYWORD]}), FakeKube()
    clock = FakeClock()
    group = ObjectRef("ContactGroup", "team", "sre")
    bot = ObjectRef("DingTalkBot", "team", "a")

    async def main() -> None:
        subject = DeliveryEngine(view, dingtalk, None, kube, ZoneInfo("Asia/Shanghai"),
                                 quota=100, quota_order=NO_NOTICES, budget=5.0, clock=clock)
        await subject.deliver("team", "sre", parse_notification(payload()))
        await settle()
        subject._answered[bot] = "1"
        assert {group, bot} <= set(subject._written) and subject._queues
        for ref in (group, bot):
            old = view.groups.pop(ref, None) or view.bots.pop(ref)
            subject.on_change(ref.kind, old, None)
        assert subject._written == {} and subject._answered == {}
        clock.now += 120  # the robot's rate window is over: its idle queue goes too
        subject.prune_queues()
        assert subject._queues == {}
        await subject.close()
    run(main)
