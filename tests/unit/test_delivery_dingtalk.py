"""DingTalk messages: rendering, @-mentions, splitting, merging, signing, reading answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_contacts.domain import outcome as reasons
from alert_contacts.domain.dingtalk import (
    MAX_MESSAGE_BYTES,
    TRUNCATED_MARKER,
    DingTalkMessage,
    classify_response,
    dingtalk_mobile,
    merge_messages,
    render_dingtalk,
    signed_url,
)

from .delivery_data import FIRING_API, SHANGHAI, UTC, many_alerts, notification

MENTIONS = ["+8613800138000", "+14155550123"]

GOLDEN = """\
### [FIRING:1] HighLatency (team-a)

#### 🔥 Firing (1)

**HighLatency** · critical

> p99 latency above 2s

api p99 is 3.1s for 10 minutes

- Labels: namespace=team-a, service=api
- Started: 2026-11-26 19:20:00 CST
- [Source](http://prometheus.example:9090/graph?g0.expr=x) · [Silence](http://alertmanager.example:9093/#/silences/new?filter=%7Balertname%3D%22HighLatency%22%2Cnamespace%3D%22team-a%22%2Cservice%3D%22api%22%2Cseverity%3D%22critical%22%7D)

#### ✅ Resolved (1)

**HighLatency** · critical

> p99 latency above 2s

- Labels: namespace=team-a, service=web
- Started: 2026-11-26 18:00:00 CST
- Ended: 2026-11-26 18:45:30 CST
- [Source](http://prometheus.example:9090/graph?g0.expr=y)

@13800138000 @+1-4155550123"""


# ---------------------------------------------------------------- rendering


def test_firing_and_resolved_render_as_the_golden_text() -> None:
    result = render_dingtalk(notification(), MENTIONS, SHANGHAI)
    assert result.template_error is None
    [message] = result.messages
    assert message.title == "[FIRING:1] HighLatency (team-a)"
    assert message.text == GOLDEN
    assert message.body() == {
        "msgtype": "markdown",
        "markdown": {"title": message.title, "text": GOLDEN},
        "at": {"atMobiles": ["13800138000", "+1-4155550123"], "isAtAll": False},
    }


def test_mentions_are_in_at_mobiles_and_in_the_text_in_dingtalks_form() -> None:
    [message] = render_dingtalk(notification(), ["+8613900139000"], SHANGHAI).messages
    assert message.at_mobiles == ("13900139000",)
    assert "@13900139000" in message.text
    assert "+8613900139000" not in message.text


def test_duplicate_mentions_are_mentioned_once() -> None:
    [message] = render_dingtalk(notification(), ["+8613900139000"] * 2, SHANGHAI).messages
    assert message.at_mobiles == ("13900139000",)
    assert message.text.count("@13900139000") == 1


def test_a_mobile_that_is_not_e164_is_skipped_not_fatal() -> None:
    mentions = ["13800138000", "+8613900139000"]
    [message] = render_dingtalk(notification(), mentions, SHANGHAI).messages
    assert message.at_mobiles == ("13900139000",)


def test_description_lines_stay_lines() -> None:
    alert = dict(FIRING_API, annotations={"description": "first line\nsecond line\n\n# third"})
    [message] = render_dingtalk(notification(alerts=[alert]), [], SHANGHAI).messages
    assert "first line\n\nsecond line\n\n\\# third" in message.text


def test_no_mentions_means_no_at_line() -> None:
    [message] = render_dingtalk(notification(), [], SHANGHAI).messages
    assert message.at_mobiles == ()
    assert "@" not in message.text.splitlines()[-1]


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+8613800138000", "13800138000"),
        ("+14155550123", "+1-4155550123"),
        ("+85291234567", "+852-91234567"),
        ("+447700900123", "+44-7700900123"),
    ],
)
def test_dingtalk_mobile_form(e164: str, expected: str) -> None:
    assert dingtalk_mobile(e164) == expected


def test_dingtalk_mobile_refuses_a_number_without_country_code() -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        dingtalk_mobile("13800138000")


def test_times_are_shown_in_the_configured_zone() -> None:
    [message] = render_dingtalk(notification(), [], UTC).messages
    assert "- Started: 2026-11-26 11:20:00 UTC" in message.text
    assert "- Ended: 2026-11-26 10:45:30 UTC" in message.text
    assert "CST" not in message.text


def test_resolved_alerts_get_no_silence_link_and_firing_ones_do() -> None:
    [message] = render_dingtalk(notification(), [], SHANGHAI).messages
    firing, resolved = message.text.split("#### ✅ Resolved")
    assert "[Silence](http://alertmanager.example:9093/#/silences/new?filter=" in firing
    assert "Silence" not in resolved


def test_no_external_url_means_no_silence_link() -> None:
    [message] = render_dingtalk(notification(externalURL=""), [], SHANGHAI).messages
    assert "Silence" not in message.text


def test_a_test_send_is_clearly_marked() -> None:
    [message] = render_dingtalk(notification(), [], SHANGHAI, test=True).messages
    assert message.title.startswith("[TEST] ")
    assert "**[TEST]**" in message.text


def test_user_text_cannot_open_a_heading_or_a_link() -> None:
    alert = dict(FIRING_API, annotations={"summary": "x\n### [click](http://evil.example)"})
    [message] = render_dingtalk(notification(alerts=[alert]), [], SHANGHAI).messages
    assert "\n### [click]" not in message.text
    assert "\\[click\\]" in message.text


def test_truncated_alerts_are_mentioned() -> None:
    [message] = render_dingtalk(notification(truncatedAlerts=7), [], SHANGHAI).messages
    assert "7 more alert(s)" in message.text


# ---------------------------------------------------------------- splitting


def test_a_30000_byte_notification_is_split_between_alerts() -> None:
    n = many_alerts(30, 1_000)  # about 30,000 bytes of descriptions alone
    result = render_dingtalk(n, MENTIONS, SHANGHAI)
    assert len(result.messages) >= 2
    for message in result.messages:
        assert message.size() <= MAX_MESSAGE_BYTES
        assert len(json.dumps(message.body(), ensure_ascii=False).encode()) <= MAX_MESSAGE_BYTES
        # every part still wakes the people
        assert message.at_mobiles == ("13800138000", "+1-4155550123")
        assert "@13800138000 @+1-4155550123" in message.text
    every_text = "".join(m.text for m in result.messages)
    for index in range(30):
        assert every_text.count(f"ALERT-{index:04d} ") == 1, index
    assert TRUNCATED_MARKER not in every_text
    total = len(result.messages)
    assert [m.title[-len(f"({total}/{total})") :] for m in result.messages][-1] == (
        f"({total}/{total})"
    )


def test_split_messages_are_filled_before_a_new_one_starts() -> None:
    result = render_dingtalk(many_alerts(200, 300), MENTIONS, SHANGHAI)
    sizes = [m.size() for m in result.messages]
    assert len(sizes) >= 3
    # greedy packing: every message but the last was too full for the next alert
    assert all(size > MAX_MESSAGE_BYTES - 1_500 for size in sizes[:-1])
    assert max(sizes) <= MAX_MESSAGE_BYTES


def test_an_alert_is_never_cut_between_two_messages() -> None:
    result = render_dingtalk(many_alerts(30, 1_000), [], SHANGHAI)
    for message in result.messages:
        blocks = message.text.count("**HighLatency**")
        descriptions = message.text.count("ALERT-")
        assert blocks == descriptions  # each alert's head and its description travel together


def test_one_alert_too_long_alone_is_truncated_with_the_marker() -> None:
    n = many_alerts(1, 50_000)
    [message] = render_dingtalk(n, MENTIONS, SHANGHAI).messages
    assert message.size() <= MAX_MESSAGE_BYTES
    assert message.text.count(TRUNCATED_MARKER) == 1
    assert message.text.endswith("@13800138000 @+1-4155550123")
    # the description was cut, not the facts and links after it
    assert "- Started: 2026-11-26 19:20:00 CST" in message.text
    assert "[Source](http://prometheus.example:9090/" in message.text
    assert "[Silence](" in message.text
    assert message.size() > MAX_MESSAGE_BYTES - 500  # cut to fit, not cut to nothing


def test_multibyte_text_is_measured_in_bytes() -> None:
    alert = dict(FIRING_API, annotations={"description": "延迟" * 6_000})  # 36,000 bytes
    [message] = render_dingtalk(notification(alerts=[alert]), [], SHANGHAI).messages
    assert message.size() <= MAX_MESSAGE_BYTES
    assert TRUNCATED_MARKER in message.text


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12_000), min_size=1, max_size=12))
def test_any_mix_of_sizes_fits_and_keeps_every_alert(sizes: list[int]) -> None:
    alerts = []
    for index, size in enumerate(sizes):
        alert = dict(FIRING_API, fingerprint=f"{index:016x}")
        alert["annotations"] = {"description": f"ALERT-{index:04d} " + "y" * size}
        alerts.append(alert)
    result = render_dingtalk(notification(alerts=alerts), MENTIONS, SHANGHAI)
    text = "".join(m.text for m in result.messages)
    for message in result.messages:
        assert message.size() <= MAX_MESSAGE_BYTES
    for index in range(len(sizes)):
        assert text.count(f"ALERT-{index:04d} ") == 1


# ---------------------------------------------------------------- user templates


def test_a_user_template_replaces_the_text_and_mentions_are_added() -> None:
    template = (
        "{{ title }}{% for a in firing %} | {{ a.labels.service }}"
        " since {{ a.starts_at }}{% endfor %}"
    )
    result = render_dingtalk(notification(), MENTIONS, SHANGHAI, template=template)
    assert result.template_error is None
    [message] = result.messages
    assert message.text.startswith(
        "[FIRING:1] HighLatency (team-a) | api since 2026-11-26 19:20:00 CST"
    )
    assert message.text.endswith("@13800138000 @+1-4155550123")


def test_a_broken_user_template_falls_back_to_the_default_and_says_why() -> None:
    result = render_dingtalk(notification(), [], SHANGHAI, template="{{ nosuchname.x }}")
    assert result.template_error is not None
    assert "nosuchname" in result.template_error
    assert result.messages[0].text == GOLDEN.rsplit("\n\n", 1)[0]  # default, no mentions


def test_a_user_template_output_is_split_too() -> None:
    template = "{% for a in alerts %}{{ a.annotations.description }}\n\n{% endfor %}"
    result = render_dingtalk(many_alerts(30, 1_000), [], SHANGHAI, template=template)
    assert result.template_error is None
    assert len(result.messages) >= 2
    text = "".join(m.text for m in result.messages)
    for index in range(30):
        assert text.count(f"ALERT-{index:04d} ") == 1
    assert all(m.size() <= MAX_MESSAGE_BYTES for m in result.messages)


# ---------------------------------------------------------------- merging


def test_merge_joins_queued_messages_up_to_the_limit() -> None:
    small = [
        DingTalkMessage(f"t{i}", f"text {i} " + "z" * 4_000, ("13800138000",)) for i in range(9)
    ]
    merged = merge_messages(small)
    assert 2 <= len(merged) < len(small)
    assert all(m.size() <= MAX_MESSAGE_BYTES for m in merged)
    joined = "".join(m.text for m in merged)
    assert [joined.index(f"text {i} ") for i in range(9)] == sorted(
        joined.index(f"text {i} ") for i in range(9)
    )
    assert merged[0].title.startswith("t0 (+")


def test_merge_unites_mentions_and_leaves_a_single_message_alone() -> None:
    a = DingTalkMessage("a", "A @13800138000", ("13800138000",))
    b = DingTalkMessage("b", "B @+1-4155550123", ("+1-4155550123",))
    [merged] = merge_messages([a, b])
    assert merged.at_mobiles == ("13800138000", "+1-4155550123")
    assert merge_messages([a]) == [a]
    assert merge_messages([]) == []


def test_merge_never_joins_past_the_limit() -> None:
    big = DingTalkMessage("big", "b" * (MAX_MESSAGE_BYTES - 200))
    assert merge_messages([big, big]) == [big, big]


# ---------------------------------------------------------------- signing


def test_signed_url_matches_a_known_vector() -> None:
    # Computed independently with openssl:
    # printf '%s\n%s' 1700000000000 "$S" | openssl dgst -sha256 -hmac "$S" -binary | base64
    secret = "SEC0123456789abcdef0123456789abcdef"
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", secret, 1700000000000)
    assert url == (
        "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000"
        "&sign=hJ95%2FXWePTzrSwXDHEJJY1Ta0B6qiG%2FYMxNzB4v4U2w%3D"
    )


def test_signed_url_is_what_a_verifier_recomputes() -> None:
    secret = "SECabcdefabcdefabcdef0011223344"
    url = signed_url("https://h.example:8443/robot/send?access_token=t", secret, 1234567890123)
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == ["1234567890123"]
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"1234567890123\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]
    assert unquote(url.split("sign=")[1]) == expected


# ---------------------------------------------------------------- answers


def _answer(errcode: int, errmsg: str) -> bytes:
    return json.dumps({"errcode": errcode, "errmsg": errmsg}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason", "code"),
    [
        (200, _answer(0, "ok"), "ok", reasons.DELIVERED, 0),
        (200, _answer(-1, "系统繁忙"), "transient", reasons.SERVER_BUSY, -1),
        (200, _answer(130101, "send too fast, exceed 20 times per minute"), "transient",
         reasons.RATE_LIMITED, 130101),
        (200, _answer(310000, "keywords not in content"), "permanent",
         reasons.KEYWORD_MISSING, 310000),
        (200, _answer(310000, "sign not match, more: [https://ding-doc.dingtalk.com/x]"),
         "permanent", reasons.SIGNATURE_REJECTED, 310000),
        (200, _answer(310000, "invalid timestamp"), "permanent",
         reasons.SIGNATURE_REJECTED, 310000),
        (200, _answer(310000, "ip 203.0.113.7 not in whitelist"), "permanent",
         reasons.IP_NOT_ALLOWED, 310000),
        (200, _answer(310000, "something new"), "permanent",
         reasons.SECURITY_CHECK_FAILED, 310000),
        (200, _answer(300001, "token is not exist"), "permanent", reasons.TOKEN_NOT_FOUND, 300001),
        (200, _answer(300005, "token is not exist"), "permanent", reasons.TOKEN_NOT_FOUND, 300005),
        (200, _answer(400101, "access_token不存在"), "permanent", reasons.TOKEN_NOT_FOUND, 400101),
        (200, _answer(400102, "机器人已停用"), "permanent", reasons.BOT_DISABLED, 400102),
        (200, _answer(400013, "群已被解散"), "permanent", reasons.GROUP_DISSOLVED, 400013),
        (200, _answer(400106, "机器人不存在"), "permanent", reasons.BOT_NOT_FOUND, 400106),
        (200, _answer(410100, "发送速度太快而限流"), "transient", reasons.RATE_LIMITED, 410100),
        (200, _answer(499999, "group dissolved"), "permanent", reasons.GROUP_DISSOLVED, 499999),
        (200, _answer(430102, "含有不合适的文字"), "permanent", reasons.CONTENT_REJECTED, 430102),
        (200, _answer(123, "unknown"), "permanent", reasons.MESSAGE_REJECTED, 123),
        (200, b'{"status": 1, "punish": "throttled for 10 minutes"}', "transient",
         reasons.RATE_LIMITED, None),
        (200, b"<html>proxy</html>", "transient", reasons.INVALID_RESPONSE, 200),
        (200, b"", "transient", reasons.INVALID_RESPONSE, 200),
        (200, b'{"errcode": "x"}', "transient", reasons.INVALID_RESPONSE, 200),
        (500, b"", "transient", reasons.SERVER_ERROR, 500),
        (503, _answer(0, "ok"), "transient", reasons.SERVER_ERROR, 503),
        (429, b"", "transient", reasons.RATE_LIMITED, 429),
        (404, b"", "permanent", reasons.HTTP_ERROR, 404),
        (302, b"", "permanent", reasons.HTTP_ERROR, 302),
        (None, None, "transient", reasons.NETWORK_ERROR, None),
    ],
)
def test_answers_are_classified(
    status: int | None, body: bytes | None, kind: str, reason: str, code: int | None
) -> None:
    outcome = classify_response(status, body)
    assert (outcome.kind, outcome.reason, outcome.code) == (kind, reason, code)


def test_the_outcome_message_carries_errcode_and_a_short_errmsg() -> None:
    outcome = classify_response(200, _answer(310000, "keywords not in content " + "x" * 1000))
    assert outcome.message.startswith("errcode 310000: keywords not in content")
    assert len(outcome.message) < 250


def test_merging_counts_bytes_as_it_goes_instead_of_reserialising_every_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json as json_module

    from alert_contacts.domain import dingtalk as module
    small = [DingTalkMessage(f"t{i}", f"alert {i} " + "é" * 40, (f"1380013{i:04d}",))
             for i in range(150)]
    serialised = 0
    real_dumps = json_module.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        nonlocal serialised
        text = real_dumps(value, **kwargs)
        serialised += len(text)
        return text
    monkeypatch.setattr(module.json, "dumps", counting)
    merged = merge_messages(small)
    total = sum(m.size() for m in small)
    assert serialised < 10 * total  # linear, not one re-serialisation per added message
    monkeypatch.setattr(module.json, "dumps", real_dumps)
    # The running count agrees with the real size: each merged message fits, exactly.
    joiner = module.MessageJoiner(small[0])
    for message in small[1:40]:
        assert joiner.size_with(message) == module._join([*joiner.messages, message]).size()
        joiner.add(message)
    assert all(m.size() <= module.MAX_MESSAGE_BYTES for m in merged)
    assert merged == _old_merge(small)


def _old_merge(messages: list[DingTalkMessage]) -> list[DingTalkMessage]:
    from alert_contacts.domain import dingtalk as module
    out: list[DingTalkMessage] = []
    group: list[DingTalkMessage] = []
    for message in messages:
        if group and module._join([*group, message]).size() > module.MAX_MESSAGE_BYTES:
            out.append(module._join(group))
            group = []
        group.append(message)
    if group:
        out.append(module._join(group))
    return out
