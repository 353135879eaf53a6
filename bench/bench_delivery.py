"""Alert delivery through one receiver: Alertmanager -> operator -> DingTalk.

Everything is real but DingTalk: a real control plane, the operator through
``python -m alert_contacts``, a real Alertmanager (``bin/alertmanager``), and
the test suite's DingTalk-compatible HTTPS server (signatures checked). The
baseline, measured in the same run against the same server, is the same
DingTalk payload posted straight to it, so the figures show what the
Alertmanager hop and the operator add.

- latency: one alert at a time, from the POST to Alertmanager's API to the
  message's arrival at the robot (Alertmanager's group_wait is 0s), p50/p99;
- throughput: a burst of alerts over many groups (one robot each, every robot
  kept under DingTalk's 20 messages a minute), messages/s arriving.

    .venv/bin/python -m bench.bench_delivery [--groups 20] [--burst 10] [--samples 40]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.alertmanager import Alertmanager, alert
from tests.e2e.delivery import Bot, delivering_operator, make_bot, make_group
from tests.e2e.fakes import FakeDingTalk, LocalCA, dingtalk_sign
from tests.e2e.harness import Cluster, wait_until

from bench.cluster import local_cluster

NS = "bench-delivery"
ROUTE_LABEL = "contact_group"


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def arrival(dingtalk: FakeDingTalk, token: str, name: str) -> float | None:
    for request in dingtalk.delivered(token):
        if f"**{name}**" in request.text:
            return request.arrived
    return None


class DirectClient:
    """The baseline client: signed messages straight to a robot over kept-alive HTTPS
    connections (one per thread), as the operator's own client keeps them."""

    def __init__(self, dingtalk: FakeDingTalk) -> None:
        self.dingtalk = dingtalk
        self.context = dingtalk.ca.client_context()
        self.local = threading.local()

    def post(self, bot: Bot, body: bytes) -> float:
        """One message; returns the time until it arrived at the server (measured as the
        operator's messages are)."""
        started = time.monotonic()
        connection = getattr(self.local, "connection", None)
        if connection is None:
            host, port = self.dingtalk.host.split(":")
            connection = http.client.HTTPSConnection(host, int(port), context=self.context,
                                                     timeout=30)
            self.local.connection = connection
        ts = int(time.time() * 1000)
        path = f"/robot/send?access_token={bot.token}"
        if bot.secret:
            path += f"&timestamp={ts}&sign={urllib.parse.quote_plus(dingtalk_sign(bot.secret, ts))}"
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        with connection.getresponse() as response:
            assert json.loads(response.read())["errcode"] == 0
        return self.dingtalk.requests(bot.token)[-1].arrived - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10, help="alerts per group in the burst")
    parser.add_argument("--samples", type=int, default=40, help="sequential latency samples")
    args = parser.parse_args()
    if args.burst > 20:
        parser.error("--burst: at most 20 (DingTalk's messages per minute per robot)")
    with local_cluster("alert-contacts-bench-delivery-", NS) as (cluster, work), \
            FakeDingTalk(LocalCA(work)) as dingtalk:
        run(cluster, work, dingtalk, args.groups, args.burst, args.samples)


def run(cluster: Cluster, work: Path, dingtalk: FakeDingTalk, groups: int, burst: int,
        samples: int) -> None:
    with delivering_operator(cluster, work / "operator.log", dingtalk.ca, dingtalk, None,
                             "--webhook=none") as delivery:
        bots = []
        for g in range(groups):
            bot = make_bot(cluster, dingtalk, NS, f"robot{g}", signed=True)
            make_group(cluster, NS, f"g{g}", [], [bot])
            bots.append(bot)
        routes = {f"g{g}": delivery.url(NS, f"g{g}") for g in range(groups)}
        manager = Alertmanager(receiver_url=delivery.url(NS, "g0"), token=delivery.token,
                               routes=routes, route_label=ROUTE_LABEL, group_wait="0s",
                               group_interval="1m", workdir=work / "alertmanager")
        (work / "alertmanager").mkdir()
        with manager:
            run_id = uuid.uuid4().hex[:6]
            # Latency: one alert at a time, spread over the robots (each stays far below
            # 20 a minute), the next posted once the previous arrived.
            latency: list[float] = []
            for i in range(samples):
                g = i % groups
                name = f"Lat{run_id}n{i}"
                started = time.monotonic()
                manager.post_alerts([alert(name, {ROUTE_LABEL: f"g{g}", "severity": "info"},
                                           {"summary": f"latency sample {i}"})])
                arrived = wait_until(f"{name} at the robot",
                                     lambda g=g, n=name: arrival(dingtalk, bots[g].token, n),
                                     timeout=60, interval=0.005)
                latency.append(arrived - started)

            # Throughput: `burst` alerts per group, all posted at once to Alertmanager.
            names = [(g, f"Burst{run_id}g{g}n{i}") for g in range(groups) for i in range(burst)]
            started = time.monotonic()
            manager.post_alerts([alert(n, {ROUTE_LABEL: f"g{g}", "severity": "info"},
                                       {"summary": "burst"}) for g, n in names])
            last = wait_until(
                "every burst alert at its robot",
                lambda: all(arrival(dingtalk, bots[g].token, n) for g, n in names)
                and max(arrival(dingtalk, bots[g].token, n) or 0 for g, n in names),
                timeout=300, interval=0.05)
            burst_seconds = last - started
            burst_messages = sum(
                1 for r in dingtalk.delivered() if "Burst" + run_id in r.text)

        # Baseline: one of the messages delivered above, posted straight to robots of the
        # same server (fresh ones, signed likewise, each kept within 20 a minute).
        sample = next(r for r in dingtalk.delivered() if "Lat" + run_id in r.text)
        body = json.dumps(sample.body, ensure_ascii=False).encode()
        count = groups * burst
        fresh = [Bot(f"direct{i}", "", f"SEC{uuid.uuid4().hex}{uuid.uuid4().hex}")
                 for i in range(max(groups, -(-(samples + count) // 20)))]
        for bot in fresh:
            bot.token = dingtalk.add_robot(secret=bot.secret)
        client = DirectClient(dingtalk)
        direct = [client.post(fresh[i % len(fresh)], body) for i in range(samples)]
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.post(fresh[i % len(fresh)], body),
                          range(samples, samples + count)))
        direct_seconds = time.monotonic() - started
        direct_count = count
        log = delivery.operator.tail(100000)

    ms = 1e3
    print(f"delivery: Alertmanager -> operator receiver -> DingTalk-compatible HTTPS server "
          f"(signed robots), {groups} groups with one robot each, 2 cores, loopback")
    print(f"  latency, {samples} alerts one at a time, POST to Alertmanager -> message at "
          f"the robot: p50 {statistics.median(latency) * ms:.0f}ms, "
          f"p99 {pct(latency, 0.99) * ms:.0f}ms")
    print(f"  baseline, the same message posted straight to the robot: "
          f"p50 {statistics.median(direct) * ms:.1f}ms, p99 {pct(direct, 0.99) * ms:.1f}ms "
          f"(the Alertmanager path: {statistics.median(latency) / statistics.median(direct):.1f}x)")
    print(f"  throughput, {count} alerts at once ({burst} per group): {burst_messages} "
          f"messages in {burst_seconds:.2f}s = {burst_messages / burst_seconds:.1f} messages/s, "
          f"{count / burst_seconds:.1f} alerts/s")
    print(f"  baseline, {direct_count} messages straight to the robots (8 clients): "
          f"{direct_count / direct_seconds:.1f} messages/s")
    refused = [r for r in dingtalk.requests() if not r.delivered]
    print(f"  refused by the DingTalk server: {len(refused)}; "
          f"operator log lines at WARNING or above: "
          f"{sum(1 for line in log.splitlines() if '[WARNING' in line or '[ERROR' in line)}"
          " (startup: no SMTP configured, the API server still initialising)")


if __name__ == "__main__":
    main()
