"""The plugin retries throttling and transient failures as kubectl does, then says so.

A scripted HTTP server on loopback stands in for the API server: each request
takes the next scripted answer (a status with headers, or a dropped connection).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from alert_contacts.plugin.cluster import (
    ATTEMPTS,
    MAX_RETRY_AFTER,
    ClusterError,
    KubeStore,
    retry_after,
    retry_delay,
)

EMPTY_LIST = {"apiVersion": "alerting.contacts.dev/v1alpha1", "kind": "ContactList", "items": []}
RESET = "reset"  # a scripted answer: close the connection without a response


def status(code: int, message: str, **headers: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return code, headers, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": message, "code": code}


OK = (200, {}, EMPTY_LIST)
THROTTLED = status(429, "storage is (re)initializing", **{"Retry-After": "1"})


class Script:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.requests: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            script.requests.append(f"{self.command} {self.path}")
            answer = script.answers.pop(0) if script.answers else OK
            if answer == RESET:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                return
            code, headers, body = answer
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def store_for(host: str, sleeps: list[float]) -> KubeStore:
    configuration = kubernetes.client.Configuration()
    configuration.host = host
    configuration.retries = False
    return KubeStore(kubernetes.client.ApiClient(configuration), host, "default", 5,
                     sleep=sleeps.append)


def test_a_throttled_list_is_retried_after_retry_after(server: tuple[str, Script]) -> None:
    host, script = server
    script.answers = [THROTTLED, status(503, "unavailable", **{"Retry-After": "3"})]
    sleeps: list[float] = []
    assert store_for(host, sleeps).list_members(None, None) == []
    assert sleeps == [1.0, 3.0]
    assert len(script.requests) == 4  # contacts thrice, then dingtalkbots


def test_a_connection_reset_is_retried_with_backoff(server: tuple[str, Script]) -> None:
    host, script = server
    script.answers = [RESET, RESET]
    sleeps: list[float] = []
    assert store_for(host, sleeps).list_groups("team-a") == []
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded_then_the_error_says_how_often(server: tuple[str, Script]) -> None:
    host, script = server
    script.answers = [THROTTLED] * 10
    sleeps: list[float] = []
    with pytest.raises(ClusterError) as error:
        store_for(host, sleeps).list_groups("team-a")
    assert str(error.value) == (
        "cannot list contactgroups in namespace team-a: storage is (re)initializing "
        f"(HTTP 429, tried {ATTEMPTS} times)")
    assert len(script.requests) == ATTEMPTS and len(sleeps) == ATTEMPTS - 1


def test_a_refusal_is_not_retried(server: tuple[str, Script]) -> None:
    host, script = server
    script.answers = [status(403, 'contacts is forbidden: User "u" cannot list')]
    sleeps: list[float] = []
    with pytest.raises(ClusterError, match=r"^forbidden: "):
        store_for(host, sleeps).list_members("team-a", None)
    assert sleeps == [] and len(script.requests) == 1


def test_a_delete_is_retried_too(server: tuple[str, Script]) -> None:
    host, script = server
    script.answers = [THROTTLED, (200, {}, {"kind": "Status", "status": "Success"})]
    sleeps: list[float] = []
    assert store_for(host, sleeps).delete("Contact", "team-a", "alice") is True
    assert sleeps == [1.0]
    assert script.requests[-1].startswith("DELETE /apis/alerting.contacts.dev/v1alpha1/"
                                          "namespaces/team-a/contacts/alice")


def test_a_get_is_retried_too(server: tuple[str, Script]) -> None:
    host, script = server
    alice = {"kind": "Contact", "metadata": {"name": "alice"}}
    script.answers = [RESET, THROTTLED, (200, {}, alice)]
    sleeps: list[float] = []
    assert store_for(host, sleeps).get("Contact", "team-a", "alice") == alice
    assert sleeps == [0.5, 1.0]
    assert len(script.requests) == 3


def test_a_get_or_delete_of_a_missing_object_is_none_at_once(server: tuple[str, Script]) -> None:
    host, script = server
    missing = status(404, 'contacts.alerting.contacts.dev "alice" not found')
    missing[2]["reason"] = "NotFound"
    missing[2]["details"] = {"name": "alice", "kind": "contacts"}
    script.answers = [missing, missing]
    sleeps: list[float] = []
    store = store_for(host, sleeps)
    assert store.get("Contact", "team-a", "alice") is None
    assert store.delete("Contact", "team-a", "alice") is False
    assert sleeps == [] and len(script.requests) == 2


def test_retry_after_header() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after": "600"}) == MAX_RETRY_AFTER
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after(None) is None


def test_retry_delay_decisions() -> None:
    def api(status: int, **headers: str) -> ApiException:
        error = ApiException(status=status, reason="r")
        error.headers = headers
        return error

    assert [retry_delay(n, api(500)) for n in range(1, ATTEMPTS + 1)] == [0.5, 1, 2, 4, None]
    assert retry_delay(1, api(429, **{"Retry-After": "7"})) == 7
    assert retry_delay(1, api(409)) is None and retry_delay(1, api(404)) is None
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    assert retry_delay(1, reset) == 0.5
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    assert retry_delay(1, refused) is None
