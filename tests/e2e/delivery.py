"""Shared pieces of the delivery e2e tests: the operator with delivery configured
(receiver, fake DingTalk, SMTP), groups of contacts and bots, posting to the receiver.
"""

from __future__ import annotations

import datetime
import json
import random
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.e2e.alertmanager import rfc3339
from tests.e2e.fakes import FakeDingTalk, LocalCA, Request, SmtpServer
from tests.e2e.harness import (
    Cluster,
    Operator,
    free_port,
    put_secret,
    unique_email,
    unique_mobile,
    wait_for_condition,
    wait_until,
)

TIMEZONE = "Asia/Shanghai"


def local_time(moment: datetime.datetime, zone: str = TIMEZONE) -> str:
    """How the docs promise a time is shown: in the configured zone, with its name."""
    local = moment.astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%d %H:%M:%S ") + str(local.tzname())


@dataclass
class Delivery:
    """The operator under test with its receiver, and the services it delivers to."""

    operator: Operator
    receiver_port: int
    token: str
    dingtalk: FakeDingTalk
    smtp: SmtpServer | None

    def url(self, namespace: str, group: str) -> str:
        return f"http://127.0.0.1:{self.receiver_port}/v1/alerts/{namespace}/{group}"

    def post(self, namespace: str, group: str, payload: bytes | Mapping[str, Any],
             token: str | None = "", timeout: float = 120) -> tuple[int, str]:
        """POST to the receiver (``token=""``: the right one, None: no header);
        returns (HTTP status, body text)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        bearer = self.token if token == "" else token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.url(namespace, group), data=data,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def delivery_env(receiver_port: int, token: str, ca: LocalCA, dingtalk: FakeDingTalk,
                 smtp: SmtpServer | None, **extra: str) -> dict[str, str]:
    return {
        "ALERT_CONTACTS_RECEIVER_PORT": str(receiver_port),
        "ALERT_CONTACTS_RECEIVER_TOKEN": token,
        "ALERT_CONTACTS_DINGTALK_HOSTS": f"oapi.dingtalk.com,{dingtalk.host}",
        "ALERT_CONTACTS_EXTRA_CA_FILE": str(ca.file),
        "ALERT_CONTACTS_TIMEZONE": TIMEZONE,
        **(smtp.env() if smtp is not None else {}),
        **extra,
    }


@contextmanager
def delivering_operator(cluster: Cluster, log_path: Path, ca: LocalCA, dingtalk: FakeDingTalk,
                        smtp: SmtpServer | None, *args: str,
                        **extra_env: str) -> Iterator[Delivery]:
    """``python -m alert_contacts`` with its receiver on a free port, trusting the test CA."""
    port = free_port()
    token = uuid.uuid4().hex
    operator = Operator(cluster, log_path, args=list(args),
                        env=delivery_env(port, token, ca, dingtalk, smtp, **extra_env))
    operator.start()
    try:
        def receiver_up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until("the operator's receiver to answer /healthz", receiver_up, timeout=30)
        yield Delivery(operator, port, token, dingtalk, smtp)
    finally:
        operator.stop()


# ---------------------------------------------------------------- objects


@dataclass
class Member:
    name: str
    mobile: str | None = None  # as written in the spec
    dingtalk_mobile: str | None = None  # as DingTalk expects it in atMobiles
    email: str | None = None


def cn_member(name: str, email: bool = True) -> Member:
    digits, e164 = unique_mobile()
    return Member(name, e164, digits, unique_email(name) if email else None)


def us_member(name: str) -> Member:
    """A US mobile, written with spaces; DingTalk expects ``+1-<national>``."""
    national = f"650253{random.randrange(10**4):04d}"
    return Member(name, f"+1 {national[:3]} {national[3:6]} {national[6:]}",
                  f"+1-{national}", unique_email(name))


def email_member(name: str) -> Member:
    return Member(name, email=unique_email(name))


@dataclass
class Bot:
    name: str
    token: str
    secret: str | None = None


@dataclass
class Group:
    namespace: str
    name: str
    members: list[Member] = field(default_factory=list)
    bots: list[Bot] = field(default_factory=list)


def new_secret() -> str:
    return "SEC" + uuid.uuid4().hex + uuid.uuid4().hex


def make_bot(cluster: Cluster, dingtalk: FakeDingTalk, namespace: str, name: str,
             signed: bool = False, configured_secret: str | None = None) -> Bot:
    """A robot on the fake DingTalk and its DingTalkBot, the URL (and signing secret)
    in a Secret as the docs recommend. ``configured_secret`` puts another secret in
    the Secret than the robot has (a user's copy-paste error)."""
    secret = new_secret() if signed else None
    token = dingtalk.add_robot(secret=secret)
    data = {"url": dingtalk.url(token)}
    spec: dict[str, Any] = {"webhook": {"secretRef": {"name": f"{name}-robot", "key": "url"}}}
    if signed:
        data["secret"] = configured_secret or secret or ""
        spec["signingSecretRef"] = {"name": f"{name}-robot", "key": "secret"}
    put_secret(cluster, namespace, f"{name}-robot", data)
    cluster.create("DingTalkBot", namespace, name, spec)
    return Bot(name, token, secret)


def make_group(cluster: Cluster, namespace: str, name: str, members: Sequence[Member],
               bots: Sequence[Bot]) -> Group:
    for m in members:
        spec: dict[str, Any] = {}
        if m.mobile:
            spec["mobile"] = m.mobile
        if m.email:
            spec["email"] = m.email
        cluster.create("Contact", namespace, m.name, spec)
    cluster.create("ContactGroup", namespace, name, {
        "contacts": [m.name for m in members], "dingTalkBots": [b.name for b in bots],
    })
    for m in members:
        wait_for_condition(cluster, "Contact", namespace, m.name, "Ready", "True")
    for b in bots:
        wait_for_condition(cluster, "DingTalkBot", namespace, b.name, "Ready", "True")
    wait_for_condition(cluster, "ContactGroup", namespace, name, "Ready", "True")
    return Group(namespace, name, list(members), list(bots))


# ---------------------------------------------------------------- payloads and messages


def payload(alerts: Sequence[Mapping[str, Any]], status: str = "firing",
            group_key: str | None = None) -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4), as Alertmanager sends it."""
    now = datetime.datetime.now(datetime.UTC)
    full = []
    for a in alerts:
        labels = dict(a.get("labels") or {})
        full.append({
            "status": a.get("status", status),
            "labels": labels,
            "annotations": dict(a.get("annotations") or {}),
            "startsAt": a.get("startsAt", rfc3339(now)),
            "endsAt": a.get("endsAt", "0001-01-01T00:00:00Z"),
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=up",
            "fingerprint": a.get("fingerprint", uuid.uuid4().hex[:16]),
        })
    common = dict(full[0]["labels"]) if full else {}
    for a in full[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {
        "version": "4", "status": status, "receiver": "contact-group",
        "groupKey": group_key or f'{{}}:{{alertname="{uuid.uuid4().hex}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {k: common[k] for k in ("alertname",) if k in common},
        "commonLabels": common, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com", "alerts": full,
    }


def messages_with(dingtalk: FakeDingTalk, token: str, needle: str) -> list[Request]:
    return [r for r in dingtalk.delivered(token) if needle in r.text]
