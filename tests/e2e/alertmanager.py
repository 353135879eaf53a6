"""A real Alertmanager (``bin/alertmanager``, built by ``make tools``) for the tests.

It routes every alert to one webhook receiver (the operator's
``/v1/alerts/{namespace}/{group}``) with a bearer token through
``http_config.authorization``, as a user's alertmanager.yml would, with short
group timings so that a test sees notifications within seconds.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import BIN, free_port, wait_until


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Alertmanager:
    """One Alertmanager process on free loopback ports with a temporary storage dir."""

    receiver_url: str  # http://127.0.0.1:PORT/v1/alerts/NAMESPACE/GROUP
    token: str | None  # bearer token for the receiver; None sends no Authorization
    # More receivers: alerts whose label ``route_label`` has a key of ``routes`` go to
    # that URL instead (one webhook receiver per ContactGroup, as users configure it).
    routes: Mapping[str, str] = field(default_factory=dict)
    route_label: str = "contact_group"
    group_by: Sequence[str] = ("alertname",)
    group_wait: str = "1s"
    group_interval: str = "2s"
    repeat_interval: str = "4h"
    # Alertmanager's own timeout per notification attempt (its default is 0: none).
    webhook_timeout: str = "60s"
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="alertmanager-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "alertmanager.log"

    def _receiver(self, name: str, url: str) -> dict[str, Any]:
        webhook: dict[str, Any] = {
            "url": url, "send_resolved": True, "max_alerts": 0,
            "timeout": self.webhook_timeout,
        }
        if self.token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": self.token}
            }
        return {"name": name, "webhook_configs": [webhook]}

    def config(self) -> dict[str, Any]:
        names = {value: f"contact-group-{i}" for i, value in enumerate(self.routes)}
        return {
            "route": {
                "receiver": "contact-group", "group_by": list(self.group_by),
                "group_wait": self.group_wait, "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
                "routes": [{"matchers": [f'{self.route_label}="{value}"'], "receiver": name}
                           for value, name in names.items()],
            },
            "receivers": [
                self._receiver("contact-group", self.receiver_url),
                *(self._receiver(names[value], url) for value, url in self.routes.items()),
            ],
        }

    def start(self) -> Alertmanager:
        binary = BIN / "alertmanager"
        if not binary.exists():
            raise AssertionError(f"{binary} is missing: run `make tools`")
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(binary), f"--config.file={config}",
             f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address=",  # no HA peers: one instance, no gossip port
             "--log.level=debug"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_until("Alertmanager to be ready", self._ready, timeout=60, interval=0.1)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"alertmanager exited with {self.proc.returncode}:\n{self.tail()}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- the API --

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts, as Prometheus does."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 200, resp.status
        except urllib.error.HTTPError as e:
            raise AssertionError(f"Alertmanager refused the alerts: {e.code} {e.read()!r}") from e

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as resp:
            result: list[dict[str, Any]] = json.loads(resp.read())
        return result

    def metrics(self) -> dict[str, float]:
        """Alertmanager's own metrics, ``name{labels}`` -> value."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        values = {}
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$", line)
            if match:
                values[match[1]] = float(match[2])
        return values

    def notification_counts(self) -> tuple[float, float]:
        """(requests, failed requests) of its webhook integration so far."""
        m = self.metrics()

        def total(name: str) -> float:
            return sum(v for k, v in m.items() if k.startswith(name + "{")
                       and 'integration="webhook"' in k)

        return (total("alertmanager_notification_requests_total"),
                total("alertmanager_notification_requests_failed_total"))


def alert(
    name: str, labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    starts: datetime.datetime | None = None, ends: datetime.datetime | None = None,
    generator_url: str = "http://prometheus.example.com/graph?g0.expr=up",
) -> dict[str, Any]:
    """One alert as Prometheus posts it. ``ends`` in the past resolves it."""
    body: dict[str, Any] = {
        "labels": {"alertname": name, **(labels or {})},
        "annotations": dict(annotations or {}),
        "startsAt": rfc3339(starts or now()),
        "generatorURL": generator_url,
    }
    if ends is not None:
        body["endsAt"] = rfc3339(ends)
    return body


def resolved(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same alerts, ended now (Alertmanager then notifies them as resolved)."""
    return [{**a, "endsAt": rfc3339(now())} for a in alerts]


def running(**kwargs: Any) -> Iterator[Alertmanager]:
    """For fixtures: ``yield from running(receiver_url=..., token=...)``."""
    manager = Alertmanager(**kwargs).start()
    try:
        yield manager
    finally:
        manager.stop()
