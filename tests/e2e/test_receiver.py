"""The receiver as the operator process starts it: a taken port stops the operator
with a message naming the option; without a token every request is refused (401)
and the log says why once."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.harness import Cluster, Operator, free_port, wait_until

PAYLOAD = json.dumps({
    "version": "4", "status": "firing", "groupKey": "k", "alerts": [
        {"status": "firing", "labels": {"alertname": "X"}, "fingerprint": "f"}],
}).encode()


def post(port: int, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/alerts/default/any",
                                     data=PAYLOAD, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_taken_receiver_port_stops_the_operator_naming_the_option(
    cluster: Cluster, tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        operator = Operator(cluster, tmp_path / "operator.log",
                            args=["--webhook=none", "--receiver-address=127.0.0.1"],
                            env={"ALERT_CONTACTS_RECEIVER_PORT": str(port)})
        operator.start(wait=False)
        try:
            assert operator.proc is not None
            proc = operator.proc
            wait_until("the operator to exit", lambda: proc.poll() is not None, timeout=60)
            assert proc.returncode != 0
            log = operator.log_path.read_text(errors="replace")
            assert f"cannot listen on 127.0.0.1:{port}" in log
            assert "--receiver-port" in log
        finally:
            operator.stop()


def test_without_a_token_every_request_is_refused_and_the_log_says_why_once(
    cluster: Cluster, operator: Operator, tmp_path: Path,
) -> None:
    port = free_port()
    # The session operator steps aside: two reconcilers would race on status writes.
    operator.stop()
    try:
        tokenless = Operator(cluster, tmp_path / "operator.log",
                             env={"ALERT_CONTACTS_RECEIVER_PORT": str(port),
                                  "ALERT_CONTACTS_RECEIVER_TOKEN": ""})
        tokenless.start()
        try:
            assert [post(port, token) for token in (None, "", "guess")] == [401, 401, 401]
            log = tokenless.log_path.read_text(errors="replace")
            assert log.count("refusing every request with 401") == 1
            assert "guess" not in log
        finally:
            tokenless.stop()
    finally:
        operator.start()
