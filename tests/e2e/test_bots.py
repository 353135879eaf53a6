"""DingTalk bots: the Secret-backed lifecycle, hostile webhook URLs, signing secrets.

An access token is a credential: no status, Event or refusal may carry it.
Secrets are created *after* the bots that read them wherever the outcome must
not depend on how soon the operator sees the Secret (GitOps order, too).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    condition,
    events_for,
    manifest,
    put_secret,
    refusal,
    unique_token,
    wait_for_condition,
)


def from_secret(name: str, key: str = "url") -> dict[str, Any]:
    return {"webhook": {"secretRef": {"name": name, "key": key}}}


def ready_message(obj: dict[str, Any]) -> str:
    return str((condition(obj, "Ready") or {}).get("message"))


def assert_no_secret_in(cluster: Cluster, namespace: str, name: str, *secrets: str) -> None:
    """Neither the bot's status nor its Events may carry a credential."""
    obj = cluster.get("DingTalkBot", namespace, name)
    shown = json.dumps((obj or {}).get("status")) + "".join(
        f"{e.reason} {e.message}" for e in events_for(cluster, namespace, name)
    )
    for secret in secrets:
        assert secret not in shown, f"a credential leaked into {name}'s status or Events"


def test_a_secret_backed_bot_follows_its_secret(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    own, taken = unique_token(), unique_token()
    # An older bot owns `taken` (an inline URL is admitted, with a warning).
    result = cluster.kubectl("apply", "-f", "-", input=manifest("DingTalkBot",
        namespace, "elder-bot", {"webhook": {"url": DINGTALK_URL + taken}}))
    assert "Warning: spec.webhook.url holds the bot's access token in plain text" in result.stderr
    wait_for_condition(cluster, "DingTalkBot", namespace, "elder-bot", "Ready", "True")

    # GitOps may apply the bot before its Secret: admitted with a warning, then it waits.
    missing = ("spec.webhook.secretRef: Secret 'oncall' key 'url' not found in this namespace"
               " (create the Secret or add the key)")
    result = cluster.kubectl("apply", "-f", "-", input=manifest(
        "DingTalkBot", namespace, "oncall-bot", from_secret("oncall")))
    assert f"Warning: {missing}; the bot stays not Ready until it exists" in result.stderr
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "oncall-bot", "Ready", "False",
                             reason="SecretNotFound")
    assert ready_message(bot) == missing
    assert (condition(bot, "Valid") or {})["reason"] == "SecretNotFound"

    put_secret(cluster, namespace, "oncall", {"url": DINGTALK_URL + own})
    wait_for_condition(cluster, "DingTalkBot", namespace, "oncall-bot", "Ready", "True",
                       reason="Accepted")
    rows = cluster.kubectl("get", "dingtalkbots", "-n", namespace, "--no-headers").stdout
    # NAME, DISPLAY NAME (the name: none is given), URL SECRET, READY, REASON (no signing).
    assert any(line.split()[:5] == ["oncall-bot", "oncall-bot", "oncall", "True", "Accepted"]
               for line in rows.splitlines())

    # The Secret is edited to the elder bot's webhook: the older bot keeps it.
    put_secret(cluster, namespace, "oncall", {"url": DINGTALK_URL + taken})
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "oncall-bot", "Ready", "False",
                             reason="DuplicateWebhook")
    assert ready_message(bot) == (f"webhook access token (ending …{taken[-4:]}) is already used"
                                  f" by DingTalkBot {namespace}/elder-bot")
    assert (condition(bot, "Stalled") or {})["status"] == "True"
    wait_for_condition(cluster, "DingTalkBot", namespace, "elder-bot", "Ready", "True")

    not_ready_since = (condition(bot, "Ready") or {})["lastTransitionTime"]
    cluster.core.delete_namespaced_secret("oncall", namespace)
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "oncall-bot", "Ready", "False",
                             reason="SecretNotFound")
    assert ready_message(bot) == missing
    # Ready stayed False (only its reason changed): it has not transitioned.
    assert (condition(bot, "Ready") or {})["lastTransitionTime"] == not_ready_since
    assert_no_secret_in(cluster, namespace, "oncall-bot", own, taken)
    assert_no_secret_in(cluster, namespace, "elder-bot", taken)


def test_a_bot_waits_for_a_missing_key_in_an_existing_secret(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token, other = unique_token(), unique_token()
    cluster.create("DingTalkBot", namespace, "bot", from_secret("hook", key="webhook"))
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "False",
                             reason="SecretNotFound")
    assert ready_message(bot).startswith(
        "spec.webhook.secretRef: Secret 'hook' key 'webhook' not found in this namespace")

    # The Secret appears without the key: a second bot reading its other key
    # becomes Ready, which proves the operator has seen the Secret...
    put_secret(cluster, namespace, "hook", {"url": DINGTALK_URL + other})
    cluster.create("DingTalkBot", namespace, "witness", from_secret("hook"))
    wait_for_condition(cluster, "DingTalkBot", namespace, "witness", "Ready", "True")
    # ...and the first bot still waits for its key.
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "False",
                             reason="SecretNotFound")

    put_secret(cluster, namespace, "hook", {"url": DINGTALK_URL + other,
                                            "webhook": DINGTALK_URL + token})
    wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "True")
    assert_no_secret_in(cluster, namespace, "bot", token, other)


def test_a_second_bot_with_the_same_inline_webhook_is_refused_without_the_token(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    cluster.create("DingTalkBot", namespace, "first", {"webhook": {"url": DINGTALK_URL + token}})
    wait_for_condition(cluster, "DingTalkBot", namespace, "first", "Ready", "True")
    status, message = refusal(lambda: cluster.create(
        "DingTalkBot", namespace, "second", {"webhook": {"url": DINGTALK_URL + token}}))
    assert status == 409
    assert message.endswith(f"webhook access token (ending …{token[-4:]}) is already used"
                            f" by DingTalkBot {namespace}/first")
    assert token not in message


HOSTILE = [
    pytest.param("https://evil.example.com/robot/send?access_token={t}",
                 "the host 'evil.example.com' is not an allowed DingTalk host (oapi.dingtalk.com)",
                 id="foreign-host"),
    pytest.param("https://oapi.dingtalk.com@evil.example.com/robot/send?access_token={t}",
                 "the URL must not contain a user name or password before the host",
                 id="userinfo"),
    pytest.param("http://oapi.dingtalk.com/robot/send?access_token={t}",
                 "the URL must use https, not 'http'", id="plain-http"),
    pytest.param("https://oapi.dingtalk.com:8443/robot/send?access_token={t}",
                 "the URL must not name port 8443", id="port"),
    pytest.param("https://127.0.0.1/robot/send?access_token={t}",
                 "the host must be a DingTalk host name, not an IP address '127.0.0.1'",
                 id="ip-literal"),
    pytest.param("https://oapi.dingtalk.com/robot/send?access_token={t}&next=https://evil.example.com",
                 "unexpected query parameter(s) 'next'; only access_token is allowed",
                 id="extra-query"),
    pytest.param("https://oapi.dingtalk.com/robot/send/../../x?access_token={t}",
                 "the path must be exactly /robot/send", id="path-traversal"),
    pytest.param("https://oapi.dingtalk.com/robot/send?access_token={t}\r\nHost: evil.example.com",
                 "the URL may contain printable ASCII only", id="header-injection"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_a_hostile_inline_webhook_url_is_refused_without_echoing_the_token(
    cluster: Cluster, operator: Operator, namespace: str, url: str, why: str
) -> None:
    token = unique_token()
    status, message = refusal(lambda: cluster.create(
        "DingTalkBot", namespace, "hostile", {"webhook": {"url": url.format(t=token)}}))
    assert status == 422, message
    assert "spec.webhook.url" in message and why in message
    assert token not in message
    assert cluster.get("DingTalkBot", namespace, "hostile") is None


def test_a_hostile_webhook_url_in_a_secret_makes_the_bot_invalid(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    cluster.create("DingTalkBot", namespace, "bot", from_secret("hook"))
    wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "False",
                       reason="SecretNotFound")
    put_secret(cluster, namespace, "hook",
               {"url": f"https://evil.example.com/robot/send?access_token={token}"})
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "bot", "Ready", "False",
                             reason="InvalidSpec")
    why = ("spec.webhook.secretRef: the webhook URL in Secret 'hook' key 'url': the host"
           " 'evil.example.com' is not an allowed DingTalk host (oapi.dingtalk.com)")
    assert ready_message(bot) == why
    assert (condition(bot, "Stalled") or {})["status"] == "True"
    assert_no_secret_in(cluster, namespace, "bot", token)

    # Now that the operator has seen the Secret, admission refuses another bot reading it.
    status, message = refusal(lambda: cluster.create(
        "DingTalkBot", namespace, "bot2", from_secret("hook")))
    assert status == 422 and why in message and token not in message


def test_a_signing_secret_must_start_with_sec(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    good, bad = "SEC" + unique_token()[:40], "KEY" + unique_token()[:40]
    put_secret(cluster, namespace, "signed", {"url": DINGTALK_URL + token, "secret": good})
    spec = {**from_secret("signed"), "signingSecretRef": {"name": "signed", "key": "secret"}}
    cluster.create("DingTalkBot", namespace, "signed-bot", spec)
    wait_for_condition(cluster, "DingTalkBot", namespace, "signed-bot", "Ready", "True")

    put_secret(cluster, namespace, "signed", {"url": DINGTALK_URL + token, "secret": bad})
    bot = wait_for_condition(cluster, "DingTalkBot", namespace, "signed-bot", "Ready", "False",
                             reason="InvalidSpec")
    why = ("spec.signingSecretRef: the signing secret in Secret 'signed' key 'secret': must be"
           " 'SEC' followed by 16 to 128 letters and digits")
    assert ready_message(bot).startswith(why)
    assert_no_secret_in(cluster, namespace, "signed-bot", token, bad, good)

    status, message = refusal(lambda: cluster.create(
        "DingTalkBot", namespace, "signed-bot2",
        {"webhook": {"url": DINGTALK_URL + unique_token()},
         "signingSecretRef": {"name": "signed", "key": "secret"}}))
    assert status == 422 and why in message and bad not in message


def test_a_bot_with_both_or_neither_webhook_form_is_refused_by_the_schema(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    both = {"webhook": {"url": DINGTALK_URL + token,
                        "secretRef": {"name": "hook", "key": "url"}}}
    for spec in (both, {"webhook": {}}):
        result = cluster.kubectl("apply", "-f", "-", check=False,
                                 input=manifest("DingTalkBot", namespace, "bot", spec))
        assert result.returncode != 0
        assert "spec.webhook needs exactly one of url or secretRef" in result.stderr
        assert token not in result.stderr
    assert cluster.get("DingTalkBot", namespace, "bot") is None
