"""Speed and scale on a real control plane, each figure next to a baseline of the same run.

    .venv/bin/python -m bench.bench_scale [--sizes 1000,10000] [--profile]

Part 1, latency (a near-empty cluster):
  apply->Ready p50/p99 with 1 client (sequential) and 10 concurrent clients, for
  this operator without and with its webhook, against the floor: a do-nothing
  kopf operator on the same CRDs that only marks Contacts Ready
  (``bench/floor_operator.py``), without and with a no-op kopf validating
  webhook. Admission (below), near-empty.
Part 2, scale (for each size N, settled Contacts; the quota raised above N):
  the operator's full garbage collections while it settles N new Contacts;
  over several restarts (``--restarts``, medians and ranges), time from the
  startup handler until the store is synced, against a plain
  paginated LIST of the same objects by this (running) process; time from
  process start until the store is synced and until the webhook answers,
  against ``kubectl get contacts -A -o json`` from its start;
  status writes on a restart (must be 0); RSS; per watch event (an edit of one
  Contact): apply->Ready time, reconcile pass time and status writes;
  admission (below) with N objects.
Admission: server-side dry-run creates, 10 concurrent, p50/p99 and the webhook
  process's CPU per request, for this operator's webhook and the floor's no-op
  kopf webhook (``floor_operator --webhook-only``) running side by side, each
  confined to a namespace of its own, in alternating blocks: both see the same
  API server at the same time.

``--profile`` records the operator with py-spy while it syncs (at each size)
and prints the top functions. Creating 50,000 Contacts takes minutes:
they are created by concurrent requests and kept across sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import controlplane
from tests.e2e.harness import REPO, free_port

from alert_contacts.runtime.kube import ApiError, Kube, custom_path, load_client
from bench.floor_operator import REFUSE_LABEL

NS_LATENCY = "bench-latency"
NS_SCALE = "bench-scale"
FLOOR_WEBHOOK = "alert-contacts-floor.dev"
OURS_WEBHOOK = "alert-contacts-bench.dev"
# Admission is compared with each webhook confined to a namespace of its own.
NS_ADMIT = {"ours": "bench-admission-ours", "floor": "bench-admission-floor"}
MS = 1e3
# Mobile numbers for the latency part, apart from the scale part's c0..cN.
SERIAL = itertools.count(1_000_000)


def contact(name: str, i: int, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "alerting.contacts.dev/v1alpha1", "kind": "Contact",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"email": f"{name}@{ns}.example.com",
                 "mobile": f"+86 139 {i // 10000 % 10000:04d} {i % 10000:04d}"},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def p50_p99(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), pct(values, 0.99)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline > 0 else "n/a"


# -- processes --


class Process:
    """An operator process (ours or the floor) with its log and ports."""

    running: list[Process] = []  # stopped when the benchmark ends, however it ends

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.health_port = free_port()
        self.metrics_port = free_port()
        args = [a.format(health=self.health_port, metrics=self.metrics_port) for a in args]
        self.started = time.perf_counter()
        with log.open("ab") as out:
            self.offset = log.stat().st_size
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, cwd=REPO,
            )
        Process.running.append(self)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").splitlines()[-40:]
            raise SystemExit(f"{self.proc.args} exited {self.proc.returncode}:\n" +
                             "\n".join(tail))

    def logged(self, text: str) -> bool:
        self.alive()
        with self.log.open("rb") as f:
            f.seek(self.offset)
            return text.encode() in f.read()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """CPU time the process has used (user and system)."""
        # /proc/<pid>/stat after the command's ")": utime and stime are the
        # 12th and 13th fields, in clock ticks.
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def idle(self, window: float = 1.0, busy: float = 0.05) -> bool:
        """Whether the process used under ``busy`` of a core over the next ``window`` s."""
        self.alive()
        before = self.cpu_seconds()
        await asyncio.sleep(window)
        return self.cpu_seconds() - before < busy * window

    def passes(self) -> float:
        """Reconcile passes the process has finished."""
        return self.metric("alert_contacts_reconcile_duration_seconds_count")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, text: str | None = None) -> float:
        """One sample's value, from ``text`` (a scrape already read) or a new scrape."""
        found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$",
                          self.metrics_text() if text is None else text, re.M)
        return float(found.group(1)) if found else 0.0

    def full_collections(self) -> tuple[int, float, float]:
        """Full garbage collections so far: how many, their total seconds, and the
        histogram bound the longest is under."""
        text = self.metrics_text()
        name = "alert_contacts_gc_full_collection_seconds"
        buckets = [(float(le), float(n)) for le, n in re.findall(
            rf'^{name}_bucket{{le="([0-9.e+-]+|\+Inf)"}} ([0-9.e+-]+)$', text, re.M)]
        count = self.metric(f"{name}_count", text)
        longest = min((le for le, n in buckets if n >= count), default=0.0)
        return int(count), self.metric(f"{name}_sum", text), longest

    def seconds_between(self, first: str, then: str) -> float:
        """Seconds between the log lines holding ``first`` and ``then`` (their timestamps)."""
        stamps: dict[str, datetime.datetime] = {}
        with self.log.open(errors="replace") as f:
            f.seek(self.offset)
            for line in f:
                for text in (first, then):
                    if text in line and text not in stamps:
                        stamps[text] = datetime.datetime.strptime(line[1:24],
                                                                  "%Y-%m-%d %H:%M:%S,%f")
        return (stamps[then] - stamps[first]).total_seconds()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def wait_for(what: str, probe: Callable[[], Awaitable[bool] | bool], timeout: float,
                   interval: float = 0.02) -> float:
    """Poll until ``probe`` is true; the seconds it took."""
    started = time.perf_counter()
    while True:
        result = probe()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# -- watching Contacts become Ready --


class ReadyWatch:
    """Follows one namespace's Contacts: when each became Ready for its current
    generation, and how many MODIFIED events (writes) the API sent."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.kube = kube
        self.ns = ns
        self.ready_at: dict[str, float] = {}
        self.modified = 0
        self.modified_by: collections.Counter[str] = collections.Counter()
        self.task: asyncio.Task[None] | None = None

    def _see(self, obj: dict[str, Any]) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        current = status.get("observedGeneration") == meta.get("generation")
        if ready and current:
            self.ready_at.setdefault(meta["name"], time.perf_counter())
        else:
            self.ready_at.pop(meta["name"], None)

    async def _list(self) -> str:
        rv, cont = "", None
        while True:
            query: dict[str, Any] = {"limit": 500, **({"continue": cont} if cont else {})}
            page = await self.kube.request("GET", custom_path("Contact", self.ns), query=query)
            for obj in page["items"]:
                self._see(obj)
            rv, cont = page["metadata"]["resourceVersion"], page["metadata"].get("continue")
            if not cont:
                return str(rv)

    async def start(self) -> None:
        self.task = asyncio.create_task(self._follow(await self._list()))

    async def _follow(self, rv: str) -> None:
        while True:
            query = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                     "timeoutSeconds": 600}
            async with self.kube.stream(custom_path("Contact", self.ns), query, 700) as lines:
                async for line in lines:
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # expired: list again
                        rv = await self._list()
                        break
                    rv = event["object"]["metadata"].get("resourceVersion", rv)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        if event["type"] == "MODIFIED":
                            self.modified += 1
                            self.modified_by[event["object"]["metadata"]["name"]] += 1
                        self._see(event["object"])
                    elif event["type"] == "DELETED":
                        self.ready_at.pop(event["object"]["metadata"]["name"], None)

    def stop(self) -> None:
        if self.task:
            self.task.cancel()


# -- API helpers --


async def create_all(kube: Kube, bodies: list[dict[str, Any]], concurrency: int = 32,
                     dry_run: bool = False, failures: list[str] | None = None) -> list[float]:
    """Create (or dry-run create) concurrently; each request's latency in seconds.
    With ``failures``, a refused or failed request is noted there (and timed)
    instead of ending the run."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(body: dict[str, Any]) -> None:
        async with limit:
            started = time.perf_counter()
            try:
                await kube.request(
                    "POST", custom_path("Contact", body["metadata"]["namespace"]),
                    query={"dryRun": "All"} if dry_run else None, body=body,
                    request_timeout=(10, 120))
            except (ApiError, TimeoutError) as e:
                if failures is None:
                    raise
                failures.append(str(e))
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(b) for b in bodies))
    return latencies


async def until_done(what: str, call: Callable[[], Awaitable[Any]], timeout: float) -> None:
    """Retry a request that the webhook may time out on while a pass runs."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            await call()
            return
        except (ApiError, TimeoutError) as e:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{what}: still failing after {timeout}s ({e})") from None
            await asyncio.sleep(1)


async def plain_list(kube: Kube, ns: str) -> tuple[float, dict[str, str]]:
    """A paginated LIST of a namespace's Contacts, parsed: seconds, name -> resourceVersion."""
    started = time.perf_counter()
    versions: dict[str, str] = {}
    cont = None
    while True:
        query: dict[str, Any] = {"limit": 500, **({"continue": cont} if cont else {})}
        page = await kube.request("GET", custom_path("Contact", ns), query=query)
        versions.update((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                        for o in page["items"])
        cont = page["metadata"].get("continue")
        if not cont:
            return time.perf_counter() - started, versions


async def kubectl_list(env: dict[str, str]) -> float:
    """``kubectl get contacts -A -o json`` from exec to exit: the plain LIST a user
    times, process start included (the baseline for the operator's own start)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(REPO / "bin/kubectl"), "get", "contacts", "-A", "-o", "json", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode:
        raise SystemExit(f"kubectl get contacts failed: {err.decode()}")
    return time.perf_counter() - started


async def delete_all(kube: Kube, ns: str) -> None:
    await kube.request("DELETE", custom_path("Contact", ns))


async def drop_webhook(kube: Kube, name: str) -> None:
    with contextlib.suppress(ApiError):
        await kube.request("DELETE", webhook_path(name))


async def our_webhook_answers(kube: Kube) -> bool:
    body = contact("webhook-probe", 0, "default")
    body["spec"] = {"email": "not-an-email"}
    try:
        await kube.request("POST", custom_path("Contact", "default"),
                           query={"dryRun": "All"}, body=body)
    except ApiError as e:
        return "admission webhook" in e.message and "spec.email" in e.message
    return False


# -- part 1: latency against the floor --


async def apply_to_ready(kube: Kube, watch: ReadyWatch, tag: str, n: int,
                         clients: int) -> list[float]:
    bodies = [contact(f"{tag}-{i}", next(SERIAL), watch.ns) for i in range(n)]
    sent: dict[str, float] = {}
    limit = asyncio.Semaphore(clients)

    async def one(body: dict[str, Any]) -> None:
        async with limit:
            sent[body["metadata"]["name"]] = time.perf_counter()
            await kube.request("POST", custom_path("Contact", watch.ns), body=body)

    await asyncio.gather(*(one(b) for b in bodies))
    await wait_for(f"{n} {tag} contacts Ready",
                   lambda: all(name in watch.ready_at for name in sent), 120)
    return [watch.ready_at[name] - t for name, t in sent.items()]


async def latency_part(kube: Kube, env: dict[str, str], work: Path, quota: int,
                       sequential: int, burst: int, admissions: int
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """apply->Ready of each variant, and the admission comparison near-empty."""
    results: dict[str, Any] = {}
    admission: dict[str, Any] = {}
    variants = [
        ("floor", ["bench.floor_operator"], None),
        ("floor+webhook", ["bench.floor_operator", "--webhook",
                           f"--webhook-config-name={FLOOR_WEBHOOK}"], FLOOR_WEBHOOK),
        ("ours, no webhook", ["alert_contacts", "--health-port={health}",
                              "--metrics-port={metrics}", f"--quota={quota}",
                              "--webhook=none"], None),
        ("ours", ["alert_contacts", "--health-port={health}", "--metrics-port={metrics}",
                  f"--quota={quota}", f"--webhook-config-name={OURS_WEBHOOK}"], OURS_WEBHOOK),
    ]
    for label, args, webhook in variants:
        watch = ReadyWatch(kube, NS_LATENCY)
        await watch.start()
        process = Process(args, work / f"latency-{label.replace(' ', '_')}.log", env)
        try:
            if args[0] == "alert_contacts":
                await wait_for("the operator to sync", lambda p=process: p.logged(
                    "listed every kind"), 120)
            if webhook == OURS_WEBHOOK:
                await wait_for("our webhook", lambda: our_webhook_answers(kube), 60, 0.1)
            elif webhook == FLOOR_WEBHOOK:
                await wait_for("the floor's webhook",
                               lambda: floor_webhook_answers(kube, NS_LATENCY), 60, 0.1)
            # Warm up (first requests pay for connections and imports).
            await apply_to_ready(kube, watch, f"warm-{len(results)}", 5, 1)
            one = await apply_to_ready(kube, watch, f"seq-{len(results)}", sequential, 1)
            ten = await apply_to_ready(kube, watch, f"burst-{len(results)}", burst, 10)
            results[label] = {"one": one, "ten": ten}
            if webhook == OURS_WEBHOOK:
                admission = await compare_admission(
                    kube, env, work, process, "near-empty", admissions)
        finally:
            process.stop()
            watch.stop()
            if webhook:
                await drop_webhook(kube, webhook)
            await delete_all(kube, NS_LATENCY)
    return results, admission


async def webhook_configured(kube: Kube, name: str) -> bool:
    try:
        await kube.request("GET", webhook_path(name))
    except ApiError:
        return False
    return True


def admission_probe(ns: str, bad_email: bool = False, label: bool = False) -> dict[str, Any]:
    """A Contact that our webhook refuses (``bad_email``) or the floor's (``label``)."""
    body = contact("admission-probe", 800_000, ns)
    if bad_email:
        body["spec"]["email"] = "not-an-email"
    if label:
        body["metadata"]["labels"] = {REFUSE_LABEL: "yes"}
    return body


async def floor_webhook_answers(kube: Kube, ns: str) -> bool:
    return "floor" in (await refusal(kube, admission_probe(ns, label=True)) or "")


# -- admission: ours against the floor's no-op webhook, side by side --


def webhook_path(name: str) -> str:
    return f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}"


async def confine_webhook(kube: Kube, name: str, ns: str) -> None:
    """Limit a webhook configuration (as kopf made it) to one namespace."""
    config = await kube.request("GET", webhook_path(name))
    for hook in config["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": ns}}
    await kube.request("PUT", webhook_path(name), body=config)


async def refusal(kube: Kube, body: dict[str, Any]) -> str | None:
    """Why a dry-run create of ``body`` is refused; None when it passes."""
    try:
        await kube.request("POST", custom_path("Contact", body["metadata"]["namespace"]),
                           query={"dryRun": "All"}, body=body)
    except ApiError as e:
        return e.message
    return None


async def webhooks_apart(kube: Kube) -> bool:
    """Each webhook answers in its own namespace, and only there: ours refuses a bad
    email, the floor a labelled probe."""
    ours, floor = NS_ADMIT["ours"], NS_ADMIT["floor"]
    return ("spec.email" in (await refusal(kube, admission_probe(ours, bad_email=True)) or "")
            and await refusal(kube, admission_probe(floor, bad_email=True)) is None
            and await floor_webhook_answers(kube, floor)
            and await refusal(kube, admission_probe(ours, label=True)) is None)


async def compare_admission(kube: Kube, env: dict[str, str], work: Path, ours: Process,
                            tag: str, admissions: int, rounds: int = 10,
                            profile: Path | None = None) -> dict[str, Any]:
    """Dry-run creates through our webhook (``ours`` runs with it) and through the
    floor's no-op webhook, started here beside it, in alternating blocks of
    ``admissions / rounds``: latencies, refusals, and each process's CPU per request."""
    floor = Process(["bench.floor_operator", "--webhook-only",
                     f"--webhook-config-name={FLOOR_WEBHOOK}"],
                    work / f"floor-admission-{tag}.log", env)
    result: dict[str, Any] = {who: {"latency": [], "failed": [], "cpu": 0.0}
                              for who in NS_ADMIT}
    spy = None
    try:
        await wait_for("the floor's webhook configuration",
                       lambda: webhook_configured(kube, FLOOR_WEBHOOK), 120, 0.1)
        for who, name in (("ours", OURS_WEBHOOK), ("floor", FLOOR_WEBHOOK)):
            await confine_webhook(kube, name, NS_ADMIT[who])
        await wait_for("each webhook to answer in its namespace only",
                       lambda: webhooks_apart(kube), 60, 0.1)
        spy = start_profile(ours.proc.pid, profile) if profile else None
        processes = {"ours": ours, "floor": floor}
        block = max(1, admissions // rounds)
        for r in range(rounds):
            for who in ("ours", "floor") if r % 2 == 0 else ("floor", "ours"):
                data, process = result[who], processes[who]
                bodies = [contact(f"dry-{tag}-{r}-{i}", 600_000 + i, NS_ADMIT[who])
                          for i in range(block)]
                before = process.cpu_seconds()
                data["latency"] += await create_all(kube, bodies, concurrency=10,
                                                    dry_run=True, failures=data["failed"])
                data["cpu"] += process.cpu_seconds() - before
    finally:
        result["profile"] = stop_profile(spy, profile) if profile else None
        floor.stop()
        await drop_webhook(kube, FLOOR_WEBHOOK)
    return result


# -- part 2: scale --


def top_of_profile(raw: Path, lines: int = 15) -> list[str]:
    """py-spy's raw (collapsed) stacks -> the functions with the most samples,
    inclusive (anywhere on the stack) and self (on top)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for row in raw.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    out = [f"{total} samples; top by self time:"]
    out += [f"  {100 * n / total:5.1f}% self  {frame}" for frame, n in own.most_common(lines)]
    out += ["the operator's own functions by inclusive time:"]
    out += [f"  {100 * n / total:5.1f}% incl  {frame}" for frame, n in inclusive.most_common()
            if "alert_contacts/" in frame and "__main__" not in frame][:lines]
    return out


def start_profile(pid: int, raw: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` at 50 Hz into ``raw`` until ``stop_profile``."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--rate", "50", "--format", "raw", "--output", str(raw), "--duration", "600",
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes] | None, raw: Path) -> list[str] | None:
    if spy is None:
        return None
    spy.send_signal(2)  # SIGINT: py-spy writes what it has
    spy.wait(60)
    return top_of_profile(raw)


async def scale_part(kube: Kube, env: dict[str, str], work: Path, sizes: list[int],
                     quota: int, profile: bool, edits: int, admissions: int, restarts: int
                     ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    have = 0
    ours = ["alert_contacts", "--health-port={health}", "--metrics-port={metrics}",
            f"--quota={quota}", f"--webhook-config-name={OURS_WEBHOOK}"]
    for n in sizes:
        row: dict[str, Any] = {"n": n}
        started = time.perf_counter()
        await create_all(kube, [contact(f"c{i}", i, NS_SCALE) for i in range(have, n)])
        row["create_s"] = time.perf_counter() - started
        have = n

        # Settle: the operator writes every new Contact's status.
        watch = ReadyWatch(kube, NS_SCALE)
        await watch.start()
        process = Process(ours, work / f"scale-{n}.log", env)
        started = time.perf_counter()
        await wait_for(f"{n} contacts Ready", lambda: len(watch.ready_at) >= n, 3600, 0.2)
        row["settle_s"] = time.perf_counter() - started
        row["settle_gc"] = process.full_collections()

        # Per watch event: edit one Contact at a time (generation moves: one write).
        # The pass that wrote the statuses goes on posting their Events for a while
        # (n of them): the edits start once the operator is idle.
        await wait_for("the settling pass to end", lambda: process.passes() > 0, 3600, 0.5)
        await wait_for("the settling pass's Events to be posted", process.idle, 3600, 0)
        passes0 = process.passes()
        seconds0 = process.metric("alert_contacts_reconcile_duration_seconds_sum")
        writes0 = process.metric("alert_contacts_status_writes_total")
        modified0 = watch.modified
        per_event: list[float] = []
        for i in range(edits):
            name = f"c{i}"
            watch.ready_at.pop(name, None)
            sent = time.perf_counter()
            await until_done(f"editing {name}", lambda nm=name, i=i: kube.request(
                "PATCH", custom_path("Contact", NS_SCALE, nm),
                body={"spec": {"displayName": f"edit {n} {i}"}},
                content_type="application/merge-patch+json"), 600)
            await wait_for(f"{name} Ready again", lambda nm=name: nm in watch.ready_at, 900,
                           0.005)
            per_event.append(watch.ready_at[name] - sent)
        await asyncio.sleep(1)
        passes = process.passes() - passes0
        row["event_s"] = p50_p99(per_event)
        row["pass_s"] = (process.metric("alert_contacts_reconcile_duration_seconds_sum")
                          - seconds0) / max(passes, 1)
        row["writes_per_event"] = (process.metric("alert_contacts_status_writes_total")
                                   - writes0) / edits
        row["api_writes_per_event"] = (watch.modified - modified0 - edits) / edits
        process.stop()
        watch.stop()
        await drop_webhook(kube, OURS_WEBHOOK)

        # Restarts over n settled Contacts, each next to its own baselines: the API
        # server's LIST time moves by a factor of two between runs at 1,000.
        row["restarts"] = []
        for attempt in range(restarts):
            last = attempt == restarts - 1
            times: dict[str, float] = {}
            times["list_s"], versions = await plain_list(kube, NS_SCALE)
            if attempt == 0:
                before = versions  # the writes of every restart count
            times["kubectl_s"] = await kubectl_list(env)
            process = Process(ours, work / f"restart-{n}-{attempt}.log", env)
            spy = (start_profile(process.proc.pid, work / f"profile-{n}.txt")
                   if profile and last else None)
            times["synced_s"] = await wait_for(
                "the store to be synced", lambda: process.logged("listed every kind"), 900)
            times["synced_in_kopf_s"] = process.seconds_between(
                "alert-contacts operator starting", "listed every kind")
            times["webhook_s"] = times["synced_s"] + await wait_for(
                "our webhook", lambda: our_webhook_answers(kube), 300, 0.05)
            row["profile"] = stop_profile(spy, work / f"profile-{n}.txt")
            row["restarts"].append(times)
            if not last:
                process.stop()
                await drop_webhook(kube, OURS_WEBHOOK)
        probe = f"probe-{n}"
        watch = ReadyWatch(kube, NS_SCALE)
        await watch.start()
        await until_done("creating the probe", lambda: create_all(
            kube, [contact(probe, 700_000 + n, NS_SCALE)]), 600)
        await wait_for("a full pass after the restart", lambda: probe in watch.ready_at, 600)
        watch.stop()
        row["rss_mb"] = process.rss_mb()
        _, after = await plain_list(kube, NS_SCALE)
        row["restart_writes"] = sum(1 for name, rv in before.items() if after.get(name) != rv)
        # Admission in the steady state: after the restart's first pass over every object.
        await wait_for("the first pass after the restart to end",
                       lambda: process.passes() > 0, 600, 0.2)
        row["admission"] = await compare_admission(
            kube, env, work, process, str(n), admissions,
            profile=work / f"profile-admission-{n}.txt" if profile else None)
        process.stop()
        await drop_webhook(kube, OURS_WEBHOOK)
        await until_done("deleting the probe", lambda: kube.request(
            "DELETE", custom_path("Contact", NS_SCALE, probe)), 600)
        rows.append(row)
        figures = {k: v for k, v in row.items() if k not in ("profile", "admission", "restarts")}
        figures |= {k: [round(t[k], 3) for t in row["restarts"]] for k in row["restarts"][0]}
        print(f"  size {n}: done ({json.dumps(figures, default=str)})", flush=True)
    return rows


# -- report --


def report_latency(latency: dict[str, Any], ncpu: int) -> None:
    print(f"\n== apply->Ready (ms), one control plane, {ncpu} cores, same run ==")
    print(f"{'operator':<18} {'1 client p50':>13} {'p99':>8} {'10 clients p50':>15} {'p99':>8}"
          "   ratio to its floor (p50 1 / p99 1 / p50 10 / p99 10)")
    for label, data in latency.items():
        one, ten = p50_p99(data["one"]), p50_p99(data["ten"])
        floor = latency["floor+webhook" if label in ("ours", "floor+webhook") else "floor"]
        f_one, f_ten = p50_p99(floor["one"]), p50_p99(floor["ten"])
        ratios = " / ".join(ratio(a, b) for a, b in zip(
            (*one, *ten), (*f_one, *f_ten), strict=True))
        print(f"{label:<18} {one[0] * MS:13.1f} {one[1] * MS:8.1f} {ten[0] * MS:15.1f} "
              f"{ten[1] * MS:8.1f}   {ratios if label not in ('floor', 'floor+webhook') else '-'}")


def report_admission(compared: list[tuple[str, dict[str, Any]]]) -> None:
    print("\n== admission: dry-run creates, 10 concurrent; ours and the no-op kopf webhook side"
          " by side, alternating blocks ==")
    print(f"{'contacts':>10} {'ours p50':>9} {'p99':>6} {'no-op p50':>10} {'p99':>6}"
          f" {'ratio p50 / p99':>16} {'CPU ms/request ours':>20} {'no-op':>6} {'ratio':>6}"
          "  refused (ours / no-op)")
    for where, data in compared:
        ours, floor = data["ours"], data["floor"]
        a, f = p50_p99(ours["latency"]), p50_p99(floor["latency"])
        cpu = [d["cpu"] / max(len(d["latency"]), 1) for d in (ours, floor)]
        refused = " / ".join(
            f"{len(d['failed'])}/{len(d['latency'])}"
            + (f" ({collections.Counter(d['failed']).most_common(1)[0][0]})"
               if d["failed"] else "")
            for d in (ours, floor))
        print(f"{where:>10} {a[0] * MS:>9.1f} {a[1] * MS:>6.1f} {f[0] * MS:>10.1f}"
              f" {f[1] * MS:>6.1f}"
              f" {ratio(a[0], f[0]) + ' / ' + ratio(a[1], f[1]):>16} {cpu[0] * MS:>20.3f}"
              f" {cpu[1] * MS:>6.3f} {ratio(cpu[0], cpu[1]):>6}  {refused}", flush=True)


def restart_median(row: dict[str, Any], key: str) -> float:
    return statistics.median(t[key] for t in row["restarts"])


def restart_ratio(row: dict[str, Any], key: str, baseline: str) -> str:
    """The median of each restart's ratio to its own baseline, and their range."""
    ratios = sorted(t[key] / t[baseline] for t in row["restarts"] if t[baseline] > 0)
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def report(latency: dict[str, Any], admission: dict[str, Any], rows: list[dict[str, Any]],
           ncpu: int) -> None:
    if latency:
        report_latency(latency, ncpu)
    report_admission(([("near-empty", admission)] if admission else [])
                     + [(str(r["n"]), r["admission"]) for r in rows])
    print("\n== scale: settled Contacts, restarts of the operator ==")
    print("in-process: from the startup handler until the store is synced, against a paginated"
          " LIST by a running\nprocess; synced / webhook: from process start (imports included)"
          " until the store is synced / the\nwebhook answers, against `kubectl get contacts -A"
          " -o json` from its start. Each restart is\nset against its own baselines, taken just"
          " before it: medians over the restarts, each ratio's range\nin brackets.")
    print(f"{'N':>7} {'restarts':>8} {'LIST':>7} {'in-process':>10} {'ratio':>17}"
          f" {'kubectl':>8} {'synced':>8} {'ratio':>17} {'webhook':>8} {'ratio':>17}")
    for r in rows:
        print(f"{r['n']:>7} {len(r['restarts']):>8} {restart_median(r, 'list_s'):>6.2f}s"
              f" {restart_median(r, 'synced_in_kopf_s'):>9.2f}s"
              f" {restart_ratio(r, 'synced_in_kopf_s', 'list_s'):>17}"
              f" {restart_median(r, 'kubectl_s'):>7.2f}s {restart_median(r, 'synced_s'):>7.2f}s"
              f" {restart_ratio(r, 'synced_s', 'kubectl_s'):>17}"
              f" {restart_median(r, 'webhook_s'):>7.2f}s"
              f" {restart_ratio(r, 'webhook_s', 'kubectl_s'):>17}")
    print(f"\n{'N':>7} {'writes on restart':>17} {'RSS MB':>7} {'edit->Ready p50/p99 ms':>23}"
          f" {'pass ms':>8} {'writes/event (API)':>18} {'create s':>9} {'settle s':>9}")
    for r in rows:
        print(f"{r['n']:>7} {r['restart_writes']:>17} "
              f"{r['rss_mb']:>7.0f} {r['event_s'][0] * MS:>11.0f} / {r['event_s'][1] * MS:<9.0f}"
              f" {r['pass_s'] * MS:>8.1f} {r['writes_per_event']:>5.2f}"
              f" ({r['api_writes_per_event']:.2f}) {r['create_s']:>9.1f} {r['settle_s']:>9.1f}")
    print("full garbage collections of the operator while it settled (a first start, writing"
          " every status):")
    for r in rows:
        count, seconds, longest = r["settle_gc"]
        print(f"  {r['n']:>6} contacts: {count} in {r['settle_s']:.0f} s" + (
            f", {seconds * MS:.0f} ms in all, the longest under {longest * MS:g} ms"
            if count else ""))
    if len(rows) > 1:
        first = rows[0]
        print("growth from the smallest size:")
        for r in rows[1:]:
            print(f"  {r['n'] / first['n']:.0f}x objects:"
                  f" synced {ratio(*(restart_median(x, 'synced_s') for x in (r, first)))},"
                  f" in-process"
                  f" {ratio(*(restart_median(x, 'synced_in_kopf_s') for x in (r, first)))},"
                  f" LIST {ratio(*(restart_median(x, 'list_s') for x in (r, first)))},"
                  f" per event {ratio(r['event_s'][0], first['event_s'][0])},"
                  f" pass {ratio(r['pass_s'], first['pass_s'])}")
    for r in rows:
        if r.get("profile"):
            print(f"\n== py-spy profile of the operator while syncing {r['n']} contacts ==")
            print("\n".join(r["profile"]))
        if r["admission"].get("profile"):
            print(f"\n== py-spy profile of the operator admitting at {r['n']} contacts ==")
            print("\n".join(r["admission"]["profile"]))


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="alert-contacts-bench-scale-"))
    kubeconfig = controlplane.up(work / "cp")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    os.environ["KUBECONFIG"] = str(kubeconfig)
    kube: Kube | None = None
    try:
        kube = Kube(await load_client())
        subprocess.run([str(REPO / "bin/kubectl"), "apply", "--server-side", "-f",
                        str(REPO / "crds")], env=env, check=True, capture_output=True)
        subprocess.run([str(REPO / "bin/kubectl"), "wait", "--for=condition=Established",
                        "-f", str(REPO / "crds")], env=env, check=True, capture_output=True)
        for ns in (NS_LATENCY, NS_SCALE, *NS_ADMIT.values()):
            await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
        quota = max(args.sizes) * 2 + 10_000
        print(f"work dir {work}; sizes {args.sizes}", flush=True)
        latency, admission = (
            await latency_part(kube, env, work, quota, args.sequential, args.burst,
                               args.admissions) if not args.no_latency else ({}, {}))
        if latency:
            report_latency(latency, os.cpu_count() or 0)
            report_admission([("near-empty", admission)])
        rows = await scale_part(kube, env, work, sorted(args.sizes), quota, args.profile,
                                args.edits, args.admissions, args.restarts)
        report(latency, admission, rows, os.cpu_count() or 0)
    finally:
        for process in Process.running:
            process.stop()
        if kube is not None:
            await kube.close()
        controlplane.down(work / "cp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1000, 10000], help="numbers of settled Contacts (comma-separated)")
    parser.add_argument("--sequential", type=int, default=300,
                        help="creates by one client, for apply->Ready")
    parser.add_argument("--burst", type=int, default=300,
                        help="creates by 10 concurrent clients, for apply->Ready")
    parser.add_argument("--edits", type=int, default=20, help="watch events timed per size")
    parser.add_argument("--admissions", type=int, default=3000,
                        help="dry-run creates (10 concurrent) timed per size and webhook")
    parser.add_argument("--restarts", type=int, default=3,
                        help="restarts timed per size (medians and ranges are reported)")
    parser.add_argument("--no-latency", action="store_true",
                        help="skip the apply->Ready part (scale figures only)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the operator while it syncs, at every size")
    args = parser.parse_args()
    if args.restarts < 1:
        parser.error(f"--restarts {args.restarts}: at least one restart is timed")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
