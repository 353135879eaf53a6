"""Alerts reach the people: a real Alertmanager -> the operator's receiver -> a
DingTalk-compatible HTTPS server and a real SMTP server (see fakes.py).

The operator runs through ``python -m alert_contacts`` with the configuration a
user of a private DingTalk would also need: the robot host with its port in
``ALERT_CONTACTS_DINGTALK_HOSTS`` and the CA in ``ALERT_CONTACTS_EXTRA_CA_FILE``.
The session operator is stopped meanwhile (two would race on status writes).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.e2e.alertmanager import Alertmanager, alert, resolved
from tests.e2e.delivery import (
    Delivery,
    cn_member,
    delivering_operator,
    email_member,
    local_time,
    make_bot,
    make_group,
    messages_with,
    payload,
    us_member,
)
from tests.e2e.fakes import MAX_MESSAGE_BYTES, FakeDingTalk, LocalCA, SmtpServer
from tests.e2e.harness import (
    Cluster,
    Operator,
    condition,
    put_secret,
    wait_for_condition,
    wait_until,
)

PLUGIN = Path(sys.executable).parent / "kubectl-contacts"
SEND_TEST = "alerting.contacts.dev/send-test"


@pytest.fixture(scope="module")
def delivery(
    cluster: Cluster, operator: Operator, ca: LocalCA, dingtalk: FakeDingTalk, smtp: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Delivery]:
    operator.stop()
    try:
        log = tmp_path_factory.mktemp("delivery") / "operator.log"
        with delivering_operator(cluster, log, ca, dingtalk, smtp) as running:
            yield running
    finally:
        operator.start()


def am_for(delivery: Delivery, namespace: str, group: str, **kwargs: str) -> Alertmanager:
    return Alertmanager(receiver_url=delivery.url(namespace, group), token=delivery.token,
                        **kwargs)


# ---------------------------------------------------------------- firing and resolved


def test_firing_then_resolved_reach_the_bots_and_emails_of_a_group(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, smtp: SmtpServer,
    namespace: str,
) -> None:
    alice, bob, carol, dave = (cn_member("alice"), us_member("bob"), email_member("carol"),
                               cn_member("dave", email=False))
    signed = make_bot(cluster, dingtalk, namespace, "oncall", signed=True)
    plain = make_bot(cluster, dingtalk, namespace, "team")
    group = make_group(cluster, namespace, "sre", [alice, bob, carol, dave], [signed, plain])
    name = f"HighErrorRate{uuid.uuid4().hex[:6]}"
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    firing = [alert(name, {"severity": "critical", "service": "checkout"},
                    {"summary": "5% of checkout requests fail",
                     "description": "error ratio above 0.05 for 5 minutes"}, starts=started)]

    with am_for(delivery, namespace, group.name) as manager:
        manager.post_alerts(firing)
        # The module's first delivery, moments after the operator took the Lease over
        # from the session operator, which released it with no sends to these robots:
        # nothing to wait for.
        for bot in group.bots:
            wait_until(f"the firing alert at robot {bot.name}",
                       lambda b=bot: messages_with(dingtalk, b.token, name), timeout=30)
        wait_until("the firing alert by email", lambda: [
            m for m in smtp.mails(to=alice.email) if name in m.subject], timeout=60)

        mentioned = {alice.dingtalk_mobile, bob.dingtalk_mobile, dave.dingtalk_mobile}
        for bot in group.bots:
            (message,) = messages_with(dingtalk, bot.token, name)
            text = message.text
            assert "Firing" in text and "Resolved" not in text
            assert "5% of checkout requests fail" in text
            assert "error ratio above 0.05 for 5 minutes" in text
            assert "service=checkout" in text
            assert f"Started: {local_time(started)}" in text
            assert "http://prometheus.example.com/graph" in text
            # @-mentions: atMobiles AND @number in the text, in DingTalk's form.
            assert set(message.at_mobiles) == mentioned
            for mobile in mentioned:
                assert f"@{mobile}" in text
            assert alice.email not in text and (alice.mobile or "") not in message.at_mobiles

        (mail,) = [m for m in smtp.mails(to=alice.email) if name in m.subject]
        assert set(mail.rcpt_tos) == {alice.email, bob.email, carol.email}
        # Bcc by default: no member sees another's address.
        headers = " ".join(f"{k}: {v}" for k, v in mail.message.items())
        for member in (alice, bob, carol):
            assert member.email is not None and member.email not in headers
        assert mail.tls and mail.login == smtp.username
        for part in ("plain", "html"):
            assert "5% of checkout requests fail" in mail.part(part)  # type: ignore[arg-type]

        manager.post_alerts(resolved(firing))
        for bot in group.bots:
            wait_until(f"the resolved alert at robot {bot.name}",
                       lambda b=bot: len(messages_with(dingtalk, b.token, name)) >= 2, timeout=60)
        wait_until("the resolved alert by email", lambda: len(
            [m for m in smtp.mails(to=alice.email) if name in m.subject]) >= 2, timeout=60)

    for bot in group.bots:
        _, second = messages_with(dingtalk, bot.token, name)
        assert "Resolved" in second.text and "Ended:" in second.text
        # Each notification exactly once per robot (none doubled).
        assert len(messages_with(dingtalk, bot.token, name)) == 2
        obj = wait_for_condition(cluster, "DingTalkBot", namespace, bot.name, "Delivering",
                                 "True")
        assert obj["status"]["delivery"]["result"] == "Delivered"
        assert bot.token not in json.dumps(obj["status"])
    status = (cluster.get("ContactGroup", namespace, group.name) or {})["status"]
    assert status["delivery"]["dingtalk"]["result"] == "Delivered"
    assert status["delivery"]["email"]["result"] == "Delivered"
    assert alice.email not in json.dumps(status)


# ---------------------------------------------------------------- permanent failure feedback


def test_a_signed_bot_with_a_wrong_secret_reports_it_until_fixed(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, namespace: str,
) -> None:
    bot = make_bot(cluster, dingtalk, namespace, "mistyped", signed=True,
                   configured_secret="SEC" + "0" * 64)
    group = make_group(cluster, namespace, "ops", [], [bot])

    # A permanent failure is answered 2xx: Alertmanager must not retry it.
    status, _ = delivery.post(namespace, group.name, payload([
        {"labels": {"alertname": "SignatureCheck", "severity": "warning"}}]))
    assert 200 <= status < 300
    obj = wait_for_condition(cluster, "DingTalkBot", namespace, bot.name, "Delivering", "False",
                             reason="SignatureRejected")
    message = (condition(obj, "Delivering") or {})["message"]
    assert "310000" in message and "sign not match" in message
    assert bot.token not in json.dumps(obj["status"])
    assert obj["status"]["delivery"]["result"] == "Failed"
    # Ready keeps its meaning: the configuration is valid, unique and within quota.
    assert (condition(obj, "Ready") or {})["status"] == "True"
    assert not dingtalk.delivered(bot.token)
    refused = len(dingtalk.requests(bot.token))
    assert refused == 1, "a permanent failure is not retried"

    put_secret(cluster, namespace, f"{bot.name}-robot",
               {"url": dingtalk.url(bot.token), "secret": bot.secret or ""})

    def delivered_after_fix() -> bool:
        code, _ = delivery.post(namespace, group.name, payload([
            {"labels": {"alertname": "SignatureCheck", "severity": "warning"}}]))
        assert 200 <= code < 300
        return bool(dingtalk.delivered(bot.token))

    # The operator sees the Secret change through its watch: a later notification is signed
    # with the new secret (each post is a new notification, not a retry).
    wait_until("a notification signed with the fixed secret", delivered_after_fix,
               timeout=60, interval=2)
    wait_for_condition(cluster, "DingTalkBot", namespace, bot.name, "Delivering", "True",
                       reason="Delivered")


# ---------------------------------------------------------------- DingTalk's limits


@pytest.mark.timeout(480)
def test_45_alerts_in_a_minute_to_one_bot_of_two_groups_stay_within_20_messages_a_minute(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, namespace: str,
) -> None:
    # Two groups share the robot: the limit is the robot's, whichever group sends.
    bot = make_bot(cluster, dingtalk, namespace, "busy")
    make_group(cluster, namespace, "storm-a", [], [bot])
    make_group(cluster, namespace, "storm-b", [], [bot])
    run = uuid.uuid4().hex[:6]
    names = [f"Storm{run}n{i:02d}" for i in range(45)]
    # group_interval 1m: Alertmanager gives each notification that long to be answered
    # (its notify timeout is the group interval, at least 10 s); the receiver may hold
    # requests behind the rate limit for longer than 10 s.
    routes = {g: delivery.url(namespace, g) for g in ("storm-a", "storm-b")}
    with Alertmanager(receiver_url=routes["storm-a"], token=delivery.token, routes=routes,
                      group_interval="1m") as manager:
        start = time.monotonic()
        for i, name in enumerate(names):
            manager.post_alerts([alert(
                name, {"severity": "warning", "contact_group": f"storm-{'ab'[i % 2]}"},
                {"summary": f"storm {i}"})])
            time.sleep(max(0.0, start + (i + 1) * 60 / 45 - time.monotonic()))

        def all_delivered() -> bool:
            texts = " ".join(r.text for r in dingtalk.delivered(bot.token))
            return all(f"**{n}**" in texts for n in names)

        wait_until("all 45 alerts at the robot", all_delivered, timeout=240, interval=1)
        requests = dingtalk.requests(bot.token)
        assert dingtalk.max_in_window(bot.token) <= 20, [
            round(r.arrived - start, 1) for r in requests]
        # Never refused for sending too fast, and every alert exactly once.
        assert all(r.delivered for r in requests), [(r.errcode, r.errmsg) for r in requests]
        texts = [r.text for r in requests]
        for name in names:
            assert sum(t.count(f"**{name}**") for t in texts) == 1, name
        # Merged, not dropped: fewer messages than alerts.
        assert len(requests) < 45
        print(f"45 alerts in {len(requests)} messages; at most "
              f"{dingtalk.max_in_window(bot.token)} in any 60 s")


@pytest.mark.timeout(300)
def test_after_a_clean_handover_a_robots_minute_and_deliveries_are_kept(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, namespace: str,
) -> None:
    """A rolling update: the leader releases the Lease with each robot's sends of the
    last minute and the delivery keys in it; the next leader counts those sends, and
    only them, and does not send again what a robot already got."""
    busy = make_bot(cluster, dingtalk, namespace, "handed")
    quiet = make_bot(cluster, dingtalk, namespace, "untouched")
    make_group(cluster, namespace, "before", [], [busy])
    make_group(cluster, namespace, "after", [], [quiet])
    run = uuid.uuid4().hex[:6]
    sent = [payload([{"labels": {"alertname": f"Minute{run}n{i:02d}"}}]) for i in range(20)]
    for body in sent:  # the robot's whole minute, one message each
        code, text = delivery.post(namespace, "before", body)
        assert code == 200, text
    first = dingtalk.requests(busy.token)[0].arrived

    delivery.operator.restart()  # SIGTERM, then a new process: a new identity
    leases = kubernetes.client.CoordinationV1Api(cluster.api)

    def held() -> dict[str, str] | None:
        lease = leases.read_namespaced_lease("alert-contacts-operator", "default")
        return dict(lease.metadata.annotations or {}) if lease.spec.holder_identity else None

    annotations = wait_until("the new process to hold the Lease", held, timeout=30)
    sends = annotations.get("alerting.contacts.dev/dingtalk-sends", "")
    assert '"robots"' in sends, annotations
    assert busy.token not in sends and "access_token" not in sends
    assert '"keys"' in annotations.get("alerting.contacts.dev/delivered", ""), annotations

    # Alertmanager sending one of them again (a retry, an HA peer's copy): the new
    # leader knows the robot got it, answers at once and sends nothing.
    asked = time.monotonic()
    code, text = delivery.post(namespace, "before", sent[7])
    assert code == 200 and "duplicate" in text, text
    assert time.monotonic() - asked < 15
    assert len(messages_with(dingtalk, busy.token, f"Minute{run}n07")) == 1

    # A robot nobody sent to: at once (a new leader used to wait a minute for every robot).
    asked = time.monotonic()
    code, text = delivery.post(namespace, "after", payload(
        [{"labels": {"alertname": f"Fresh{run}"}}]))
    assert code == 200, text
    assert time.monotonic() - asked < 15, "the new leader waited for an idle robot"
    # The busy robot's 21st message waits until its first leaves the minute.
    code, text = delivery.post(namespace, "before", payload(
        [{"labels": {"alertname": f"Late{run}"}}]))
    assert code == 200, text
    (late,) = messages_with(dingtalk, busy.token, f"Late{run}")
    assert late.arrived - first >= 60.0, late.arrived - first
    assert dingtalk.max_in_window(busy.token) <= 20
    assert all(r.delivered for r in dingtalk.requests(busy.token))


def test_a_30000_byte_notification_is_split_between_alerts(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, namespace: str,
) -> None:
    bot = make_bot(cluster, dingtalk, namespace, "verbose")
    group = make_group(cluster, namespace, "big", [cn_member("erin", email=False)], [bot])
    alerts = [{
        "labels": {"alertname": "BigAlert", "instance": f"node-{i:02d}"},
        "annotations": {"summary": f"node-{i:02d} is on fire",
                        "description": f"start{i:02d} " + "x" * 1400 + f" end{i:02d}"},
    } for i in range(20)]
    body = payload(alerts)
    assert len(json.dumps(body).encode()) >= 30_000
    status, _ = delivery.post(namespace, group.name, body)
    assert status == 200
    messages = dingtalk.delivered(bot.token)
    assert len(messages) >= 2
    for m in messages:
        assert len(json.dumps(m.body, ensure_ascii=False, separators=(",", ":")).encode()) <= (
            MAX_MESSAGE_BYTES)
        # Every part @-mentions, or DingTalk would not notify the member for it.
        assert m.at_mobiles == [group.members[0].dingtalk_mobile]
    for i in range(20):
        # Never cut mid-alert: each alert whole in exactly one message.
        holding = [m for m in messages if f"start{i:02d} " in m.text]
        assert len(holding) == 1, i
        assert f" end{i:02d}" in holding[0].text


# ---------------------------------------------------------------- retries with Alertmanager


@pytest.mark.timeout(420)
def test_a_transient_failure_is_retried_by_alertmanager_and_delivered_once(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, smtp: SmtpServer,
    namespace: str,
) -> None:
    healthy = make_bot(cluster, dingtalk, namespace, "healthy")
    flaky = make_bot(cluster, dingtalk, namespace, "flaky")
    frank = cn_member("frank")
    group = make_group(cluster, namespace, "retry", [frank], [healthy, flaky])
    dingtalk.fail_next(flaky.token, 10_000, 500)
    name = f"Retried{uuid.uuid4().hex[:6]}"
    with am_for(delivery, namespace, group.name, group_interval="1m") as manager:
        manager.post_alerts([alert(name, {"severity": "critical"}, {"summary": "retry me"})])
        # The receiver retries within its budget, then answers 5xx to Alertmanager.
        wait_until("Alertmanager to see a failed notification",
                   lambda: manager.notification_counts()[1] >= 1, timeout=150, interval=1)
        assert messages_with(dingtalk, healthy.token, name)
        assert [m for m in smtp.mails(to=frank.email) if name in m.subject]
        assert not messages_with(dingtalk, flaky.token, name)
        dingtalk.clear_failures(flaky.token)

        wait_until("Alertmanager's retry to reach the flaky robot",
                   lambda: messages_with(dingtalk, flaky.token, name), timeout=150, interval=1)

        def succeeded() -> bool:
            total, failed = manager.notification_counts()
            return total - failed >= 1

        wait_until("Alertmanager to record the retry's success", succeeded, timeout=60)
    # Delivered exactly once to every target, although Alertmanager sent it twice or more.
    assert len(messages_with(dingtalk, healthy.token, name)) == 1
    assert len(messages_with(dingtalk, flaky.token, name)) == 1
    assert len([m for m in smtp.mails(to=frank.email) if name in m.subject]) == 1
    assert len(dingtalk.requests(flaky.token)) > 2  # it was retried in the request, too


# ---------------------------------------------------------------- the receiver's front door


def test_the_receiver_refuses_bad_requests_with_4xx(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, namespace: str,
) -> None:
    bot = make_bot(cluster, dingtalk, namespace, "guarded")
    group = make_group(cluster, namespace, "front", [], [bot])
    good = payload([{"labels": {"alertname": "FrontDoor"}}])

    code, _ = delivery.post(namespace, group.name, good, token=None)
    assert code == 401
    code, _ = delivery.post(namespace, group.name, good, token="not-the-token")
    assert code == 401
    code, text = delivery.post(namespace, group.name, b"{not json")
    assert code == 400 and "JSON" in text
    code, text = delivery.post(namespace, group.name, {"version": "4"})
    assert code == 400 and "alerts" in text
    code, text = delivery.post(namespace, group.name, {**good, "alerts": [{"labels": "x"}]})
    assert code == 400 and "alerts[0]" in text
    code, text = delivery.post(namespace, "no-such-group", good)
    assert code == 404 and "no-such-group" in text
    code, _ = delivery.post(namespace, group.name, b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert code == 413
    assert dingtalk.requests(bot.token) == [], "nothing refused reaches a robot"

    code, _ = delivery.post(namespace, group.name, good)
    assert code == 200
    assert messages_with(dingtalk, bot.token, "FrontDoor")
    log = delivery.operator.tail(400)
    assert delivery.token not in log and bot.token not in log


# ---------------------------------------------------------------- test sends


def plugin(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: run `.venv/bin/pip install -e '.[test]'`")
    return subprocess.run([str(PLUGIN), *args], capture_output=True, text=True,
                          env=cluster.env(), timeout=120)


def last_test(cluster: Cluster, kind: str, namespace: str, name: str, request: str
              ) -> dict[str, str] | None:
    obj = cluster.get(kind, namespace, name)
    found = ((obj or {}).get("status") or {}).get("lastTest")
    return found if found and found.get("request") == request else None


def test_test_sends_by_annotation_and_with_kubectl_contacts_test(
    cluster: Cluster, delivery: Delivery, dingtalk: FakeDingTalk, smtp: SmtpServer,
    namespace: str,
) -> None:
    grace = cn_member("grace")
    bot = make_bot(cluster, dingtalk, namespace, "probe", signed=True)
    group = make_group(cluster, namespace, "tested", [grace], [bot])

    cluster.kubectl("annotate", "-n", namespace, f"dingtalkbot/{bot.name}", f"{SEND_TEST}=one")
    recorded = wait_until("the bot's test result",
                          lambda: last_test(cluster, "DingTalkBot", namespace, bot.name, "one"))
    assert recorded["result"] == "Succeeded"
    assert recorded["time"] and recorded["message"]
    (message,) = dingtalk.delivered(bot.token)
    assert "test" in message.text.lower()

    cluster.kubectl("annotate", "-n", namespace, f"contactgroup/{group.name}", f"{SEND_TEST}=g1")
    recorded = wait_until("the group's test result", lambda: last_test(
        cluster, "ContactGroup", namespace, group.name, "g1"), timeout=60)
    assert recorded["result"] == "Succeeded", recorded
    assert len(dingtalk.delivered(bot.token)) == 2
    wait_until("the group's test email", lambda: smtp.mails(to=grace.email))

    result = plugin(cluster, "test", "bot", bot.name, "-n", namespace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded" in result.stdout
    assert len(dingtalk.delivered(bot.token)) == 3

    dingtalk.fail_next(bot.token, 1, 310000)
    result = plugin(cluster, "test", "bot", bot.name, "-n", namespace)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed" in result.stdout + result.stderr
    assert "SignatureRejected" in result.stdout + result.stderr or "310000" in (
        result.stdout + result.stderr)

    result = plugin(cluster, "test", "group", group.name, "-n", namespace)
    assert result.returncode == 0, result.stdout + result.stderr



# ---------------------------------------------------------------- system notices


def test_a_system_notice_when_the_quota_is_90_percent_used(
    cluster: Cluster, delivery: Delivery, ca: LocalCA, dingtalk: FakeDingTalk,
    smtp: SmtpServer, namespace: str, tmp_path: Path,
) -> None:
    # The contacts first, with the running operator, so each is decided before the quota
    # shrinks; then an operator whose quota these objects fill to 90%.
    admin = email_member("admin")
    cluster.create("Contact", namespace, admin.name,
                   {"email": admin.email, "systemNotifications": True})
    others = [email_member(f"user{i}") for i in range(8)]
    for m in others:
        cluster.create("Contact", namespace, m.name, {"email": m.email})
    for name in [admin.name, *(m.name for m in others)]:
        wait_for_condition(cluster, "Contact", namespace, name, "Ready", "True")
    # The admin's group has a robot: notices go there too.
    bot = make_bot(cluster, dingtalk, namespace, "admins-robot")
    cluster.create("ContactGroup", namespace, "admins",
                   {"contacts": [admin.name], "dingTalkBots": [bot.name]})
    wait_for_condition(cluster, "ContactGroup", namespace, "admins", "Ready", "True")
    in_quota = sum(
        1 for o in cluster.list("Contact") + cluster.list("DingTalkBot")
        if (condition(o, "WithinQuota") or {}).get("status") == "True"
    )
    quota = in_quota * 10 // 9  # 11 when in_quota is 10 (no other test left objects)
    assert 0.9 * quota <= in_quota <= quota

    delivery.operator.stop()
    try:
        with delivering_operator(cluster, tmp_path / "operator.log", ca, dingtalk, smtp,
                                 ALERT_CONTACTS_QUOTA=str(quota)):
            notices = wait_until("the quota notice by email", lambda: [
                m for m in smtp.mails(to=admin.email) if "quota" in m.subject], timeout=90)
            wait_until("the quota notice at the admins' robot",
                       lambda: messages_with(dingtalk, bot.token, "quota"), timeout=60)
    finally:
        delivery.operator.start()
    (notice,) = notices
    assert f"{in_quota}/{quota}" in notice.subject
    (message,) = messages_with(dingtalk, bot.token, "quota")
    assert f"{in_quota}/{quota}" in message.text
    # Only to contacts with systemNotifications.
    assert all(not smtp.mails(to=m.email) for m in others)


def test_the_receiver_answers_healthz(delivery: Delivery) -> None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{delivery.receiver_port}/healthz", timeout=5
    ) as resp:
        assert resp.status == 200
