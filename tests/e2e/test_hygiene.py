"""Nothing secret or personal leaks, and no text that lies, on a real control plane.

Admission refusals, status and Events of objects that got past admission (the
webhook was down) must not carry a webhook access token however its query
parameter is spelt, nor a mobile number however its digits are separated;
control and format characters are refused by the API server itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    events_for,
    manifest,
    put_secret,
    unique_email,
    unique_mobile,
    unique_token,
    wait_for_condition,
    wait_until,
)

HOST = "https://oapi.dingtalk.com/robot/send"


def hostile_urls(token: str) -> dict[str, str]:
    return {
        "upper-case": f"{HOST}?Access_Token={token}",
        "short-name": f"{HOST}?token={token}",
        "encoded": f"{HOST}?access%5Ftoken={token}",
        "fragment": f"{HOST}#access_token={token}",
        "userinfo": f"https://robot:{token}@oapi.dingtalk.com/robot/send",
        "path": f"{HOST}/{token}",
    }


def test_admission_refusals_never_echo_a_token(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    for name, url in hostile_urls(token).items():
        result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
            "DingTalkBot", namespace, name, {"webhook": {"url": url}}))
        assert result.returncode != 0, f"{name}: admitted {url}"
        assert "denied the request" in result.stderr and "spec.webhook.url" in result.stderr
        assert token[:8] not in result.stderr, f"{name}: the token leaked: {result.stderr}"


def test_status_and_events_of_objects_past_admission_carry_no_token_or_number(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    token = unique_token()
    national, _ = unique_mobile()
    # Ten digits, separated by no-break and thin spaces and a slash: not a valid number.
    mobile = f"{national[:3]}\u00a0{national[3:7]}\u202f{national[7:10]}/"
    # Without the webhook, everything is created: the reconciler alone judges (and
    # writes the status and the first Event). One operator at a time.
    operator.stop()
    reconciler_only = Operator(cluster, tmp_path / "operator.log", args=["--webhook=none"])
    try:
        reconciler_only.start()
        for name, url in hostile_urls(token).items():
            cluster.kubectl("apply", "-f", "-", input=manifest(
                "DingTalkBot", namespace, name, {"webhook": {"url": url}}))
        cluster.kubectl("apply", "-f", "-", input=manifest(
            "Contact", namespace, "spaced", {"mobile": mobile}))
        for name in hostile_urls(token):
            wait_for_condition(cluster, "DingTalkBot", namespace, name, "Ready", "False",
                               reason="InvalidSpec")
        contact = wait_for_condition(cluster, "Contact", namespace, "spaced", "Ready", "False",
                                     reason="InvalidSpec")
    finally:
        reconciler_only.stop()
        operator.start()

    # Status keeps the user's own value (escaped), as a refusal would show it.
    assert national[3:7] in json.dumps(contact["status"], ensure_ascii=False)
    for name in hostile_urls(token):
        obj = cluster.get("DingTalkBot", namespace, name)
        assert token[:8] not in json.dumps(obj["status"]), f"{name}: token in status"
        events = wait_until(f"{name}'s Warning Event",
                            lambda name=name: events_for(cluster, namespace, name))
        assert all(token[:8] not in f"{e.message}" for e in events), f"{name}: token in Event"
    events = wait_until("the contact's Warning Event",
                        lambda: events_for(cluster, namespace, "spaced"))
    for event in events:
        assert event.reason == "InvalidSpec"
        assert national[3:7] not in event.message, f"the number leaked: {event.message!r}"


@pytest.mark.parametrize(("field", "value"), [
    ("displayName", "Alice\u202eecilA"),
    ("displayName", "two\nlines"),
    ("mobile", "138\u200b0013\u200b8000"),
    ("email", "alice\u2060@example.com"),
])
def test_the_api_server_refuses_control_and_format_characters(
    cluster: Cluster, namespace: str, field: str, value: str
) -> None:
    spec = {"email": unique_email(), field: value}
    result = cluster.kubectl("apply", "-f", "-", check=False,
                             input=manifest("Contact", namespace, "tricky", spec))
    assert result.returncode != 0
    assert f"spec.{field}: Invalid value" in result.stderr
    assert "must not contain control or invisible formatting characters" in result.stderr


def test_a_blank_email_beside_a_mobile_is_refused(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    national, _ = unique_mobile()
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
        "Contact", namespace, "half", {"mobile": national, "email": ""}))
    assert result.returncode != 0
    assert "spec.email '': is empty: fill it in, or remove the field" in result.stderr


def test_look_alike_and_full_width_emails(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    local = unique_email("fold").split("@")[0]
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "Contact", namespace, "plain", {"email": f"{local}@example.com"}))
    wait_for_condition(cluster, "Contact", namespace, "plain", "Ready", "True")
    # The same address in full-width letters is the same key: a duplicate.
    full_width = local.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
        "Contact", namespace, "wide", {"email": f"{full_width}@example.com"}))
    assert result.returncode != 0
    assert f"email {local}@example.com is already used by Contact {namespace}/plain" in (
        result.stderr)
    # A Cyrillic letter in a Latin name is a look-alike.
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
        "Contact", namespace, "spoof", {"email": f"p\u0430y-{local}@example.com"}))
    assert result.returncode != 0
    assert "mixes Cyrillic and Latin letters" in result.stderr


def test_a_bot_pointing_at_a_secret_of_another_type_is_told_so(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "oncall"}, "type": "example.com/dingtalk",
        "stringData": {"url": DINGTALK_URL + unique_token()},
    })
    result = cluster.kubectl("apply", "-f", "-", input=manifest(
        "DingTalkBot", namespace, "typed",
        {"webhook": {"secretRef": {"name": "oncall", "key": "url"}}}))
    message = ("spec.webhook.secretRef: Secret 'oncall' in this namespace has type "
               "'example.com/dingtalk'; the operator reads webhook URLs and signing secrets "
               "only from Secrets of type 'Opaque'")
    assert message in result.stderr  # the admission warning
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "typed", "Ready", "False",
                             reason="SecretNotFound")
    ready = next(c for c in bot["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"].startswith(message) and "not found" not in ready["message"]
    # Replaced by an Opaque Secret of that name, the bot works.
    cluster.core.delete_namespaced_secret("oncall", namespace)
    put_secret(cluster, namespace, "oncall", {"url": DINGTALK_URL + unique_token()})
    wait_for_condition(cluster, "DingTalkBot", namespace, "typed", "Ready", "True")
