"""Alertmanager notifications as DingTalk robot messages, and DingTalk's answers.

Everything here is pure: rendering markdown (with @-mentions, times in the
configured zone, source and silence links), splitting at DingTalk's size limit
between alerts, merging queued messages, signing webhook URLs and reading the
robot API's answers into a SendOutcome.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import phonenumbers
from phonenumbers import NumberParseException

from . import outcome as reasons
from .alerts import Alert, Notification, format_time, is_http_url, notification_title, silence_url
from .outcome import SendOutcome
from .templates import render_template, template_context

MAX_MESSAGE_BYTES = 20_000
"""DingTalk refuses a robot message over 20,000 bytes; counted on the whole JSON body."""

TRUNCATED_MARKER = " …(truncated: this alert is too long for one DingTalk message)"
TEST_BANNER = "**[TEST]** This is a test message from alert-contacts-operator; no alert is firing."
MAX_TITLE_CHARS = 100
PART_RESERVE = 32
"""Bytes kept free for the " (2/5)" part numbers in the title and heading of a split message."""
SEPARATOR_BYTES = len(json.dumps("\n\n")) - 2
MAX_VALUE_CHARS = 2_000
"""A label value is cut to this many characters in the default text (annotations are not:
an alert too long for one message is truncated as a whole, with TRUNCATED_MARKER)."""


@dataclass(frozen=True)
class DingTalkMessage:
    """One markdown robot message; ``at_mobiles`` in DingTalk's form (``dingtalk_mobile``)."""

    title: str
    text: str
    at_mobiles: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {"title": self.title, "text": self.text},
            "at": {"atMobiles": list(self.at_mobiles), "isAtAll": False},
        }

    def size(self) -> int:
        """Bytes of the JSON body as the sender posts it."""
        return body_size(self.body())


def body_size(body: Mapping[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


@dataclass(frozen=True)
class RenderResult:
    messages: list[DingTalkMessage] = field(default_factory=list)
    template_error: str | None = None


# ---------------------------------------------------------------- mentions


def dingtalk_mobile(e164: str) -> str:
    """A mobile in the form DingTalk matches members by.

    National digits for +86 (``+8613800138000`` -> ``13800138000``),
    ``+<cc>-<national>`` otherwise (``+14155550123`` -> ``+1-4155550123``).
    """
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        raise ValueError(f"mobile {e164!r}: not in E.164 form (+ and country code)") from None
    national = phonenumbers.national_significant_number(number)
    if number.country_code == 86:
        return national
    return f"+{number.country_code}-{national}"


def _mentionable(mentions: Sequence[str]) -> list[str]:
    # Members' mobiles are normalised E.164 by validation; one that is not
    # cannot be mentioned, and must not stop the message.
    out = []
    for mobile in mentions:
        try:
            out.append(dingtalk_mobile(mobile))
        except ValueError:
            continue
    return out


def _mention_line(at_mobiles: Sequence[str]) -> str:
    return " ".join(f"@{m}" for m in at_mobiles)


# ---------------------------------------------------------------- rendering


def render_dingtalk(
    notification: Notification,
    mentions: Sequence[str],
    tz: tzinfo,
    *,
    test: bool = False,
    template: str | None = None,
) -> RenderResult:
    """The notification as one or more markdown messages of at most MAX_MESSAGE_BYTES.

    ``mentions`` are E.164 numbers of the members to @-mention; each message
    carries them in ``at.atMobiles`` and as ``@<number>`` in its text, because
    DingTalk ignores one without the other. A user ``template`` (Jinja2,
    sandboxed) replaces the default text; when it fails, the default is used
    and the error returned in ``template_error``.
    """
    at_mobiles = tuple(dict.fromkeys(_mentionable(mentions)))
    title = _clip(("[TEST] " if test else "") + notification_title(notification), MAX_TITLE_CHARS)
    alerts = _ordered(notification.alerts)
    error: str | None = None
    if template is not None:
        custom = _render_custom(notification, alerts, template, tz, test, title, at_mobiles)
        if isinstance(custom, list):
            return RenderResult(custom, None)
        error = custom
    return RenderResult(_render_default(notification, alerts, tz, test, title, at_mobiles), error)


def _ordered(alerts: Sequence[Alert]) -> list[Alert]:
    # Firing first (what needs a human now), then resolved; Alertmanager's order within.
    return [a for a in alerts if a.firing] + [a for a in alerts if not a.firing]


def _render_default(
    notification: Notification,
    alerts: list[Alert],
    tz: tzinfo,
    test: bool,
    title: str,
    at_mobiles: tuple[str, ...],
) -> list[DingTalkMessage]:
    silence_base = notification.external_url
    blocks: list[tuple[str, str]] = []  # (section, block text)
    for alert in alerts:
        section = "firing" if alert.firing else "resolved"
        blocks.append((section, _alert_block(alert, tz, silence_base)))
    header_lines = [f"### {title}"]
    if test:
        header_lines.append(TEST_BANNER)
    footer = _footer(notification, at_mobiles)
    return _pack(
        title,
        "\n\n".join(header_lines),
        blocks,
        footer,
        at_mobiles,
        counts={"firing": len(notification.firing), "resolved": len(notification.resolved)},
    )


def _section_heading(section: str, count: int) -> str:
    return f"#### 🔥 Firing ({count})" if section == "firing" else f"#### ✅ Resolved ({count})"


def _footer(notification: Notification, at_mobiles: tuple[str, ...]) -> str:
    lines = []
    if notification.truncated_alerts:
        lines.append(
            f"*{notification.truncated_alerts} more alert(s) in this group were left out"
            " by Alertmanager (max_alerts).*"
        )
    if at_mobiles:
        lines.append(_mention_line(at_mobiles))
    return "\n\n".join(lines)


def _alert_block(alert: Alert, tz: tzinfo, external_url: str) -> str:
    name = alert.name or "(no alertname)"
    severity = alert.labels.get("severity")
    head = f"**{_md(name)}**" + (f" · {_md(severity)}" if severity else "")
    paragraphs = [head]
    summary = alert.annotations.get("summary") or alert.annotations.get("message")
    description = alert.annotations.get("description")
    if summary:
        paragraphs.append(f"> {_md(summary)}")
    if description and description != summary:
        # Keep the description's own lines: runbooks and stack traces read badly as one.
        lines_of = [_md(line) for line in description.splitlines() if line.strip()]
        paragraphs.append("\n\n".join(lines_of))
    lines: list[str] = []
    shown = {k: v for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")}
    if shown:
        labels = ", ".join(f"{_md(k)}={_md(_clip(v, MAX_VALUE_CHARS))}" for k, v in shown.items())
        lines.append(f"- Labels: {labels}")
    if alert.starts_at is not None:
        lines.append(f"- Started: {format_time(alert.starts_at, tz)}")
    if not alert.firing and alert.ends_at is not None:
        lines.append(f"- Ended: {format_time(alert.ends_at, tz)}")
    links = []
    if is_http_url(alert.generator_url):
        links.append(f"[Source]({_link(alert.generator_url)})")
    silence = silence_url(external_url, alert.labels)
    if alert.firing and silence:
        links.append(f"[Silence]({silence})")
    if links:
        lines.append("- " + " · ".join(links))
    if lines:
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _link(url: str) -> str:
    # A ')' or space in a markdown link target ends the link early.
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _md(text: str) -> str:
    # DingTalk's markdown has no reliable escape: keep user text from opening
    # headings, links or emphasis that swallow the rest of the message.
    return (
        text.replace("\r", "")
        .replace("\n", " ")
        .replace("*", "\\*")
        .replace("[", "\\[")
        .replace("]", "\\]")
        .replace("#", "\\#")
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- splitting


def _pack(
    title: str,
    header: str,
    blocks: list[tuple[str, str]],
    footer: str,
    at_mobiles: tuple[str, ...],
    counts: Mapping[str, int],
) -> list[DingTalkMessage]:
    """Greedily fill messages with whole alert blocks; a block too big alone is truncated."""

    def compose(part_title: str, part_header: str, part: list[tuple[str, str]]) -> DingTalkMessage:
        pieces = [part_header]
        section = None
        for block_section, text in part:
            if block_section != section:
                pieces.append(_section_heading(block_section, counts[block_section]))
                section = block_section
            pieces.append(text)
        if footer:
            pieces.append(footer)
        return DingTalkMessage(part_title, "\n\n".join(pieces), at_mobiles)

    # Sizes add up: JSON escapes character by character, so the body's size is
    # the empty message's plus, per piece, its escaped length and a separator's.
    # That keeps packing linear in the number of alerts.
    budget = MAX_MESSAGE_BYTES - PART_RESERVE
    empty = compose(title, header, []).size()
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = empty
    for block in blocks:
        added = _escaped_len(block[1]) + SEPARATOR_BYTES
        if not current or current[-1][0] != block[0]:
            added += _escaped_len(_section_heading(block[0], counts[block[0]])) + SEPARATOR_BYTES
        if current and size + added > budget:
            chunks.append(current)
            current, size = [], empty
        if not current:  # the first block of a message: measured whole, with its heading
            section, text = block
            alone = compose(title, header, [block])
            slack = 0
            while alone.size() > budget:
                block = (section, _truncate_block(text, alone.size() - budget + slack))
                alone = compose(title, header, [block])
                slack += 64  # JSON escaping of the cut text made it a little longer
            added = alone.size() - empty
        current.append(block)
        size += added
    if current or not chunks:
        chunks.append(current)

    if len(chunks) == 1:
        return [compose(title, header, chunks[0])]
    messages = []
    total = len(chunks)
    for index, chunk in enumerate(chunks, start=1):
        part_title = _clip(f"{title} ({index}/{total})", MAX_TITLE_CHARS)
        part_header = header.replace(f"### {title}", f"### {title} ({index}/{total})", 1)
        message = compose(part_title, part_header, chunk)
        if message.size() > MAX_MESSAGE_BYTES:
            # The part numbers added a few bytes to a chunk that was exactly full.
            message = compose(title, header, chunk)
        messages.append(message)
    return messages


def _escaped_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (without the quotes)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _truncate_block(text: str, excess: int) -> str:
    """``text`` at least ``excess`` JSON bytes shorter, with the marker where it was cut.

    The longest paragraph (in practice the description) is cut, so the alert's
    name, times and links at the end of the block survive.
    """
    paragraphs = text.split("\n\n")
    sizes = [body_size({"t": p}) for p in paragraphs]
    longest = max(range(len(paragraphs)), key=sizes.__getitem__)
    need = excess + body_size({"t": TRUNCATED_MARKER}) - body_size({"t": ""})
    target = sizes[longest] - need
    if target < body_size({"t": ""}):
        # Even the longest paragraph is not enough: cut the block from its end.
        return _cut_to(text, body_size({"t": text}) - need) + TRUNCATED_MARKER
    paragraphs[longest] = _cut_to(paragraphs[longest], target) + TRUNCATED_MARKER
    return "\n\n".join(paragraphs)


def _cut_to(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose JSON string form is at most ``limit`` bytes."""
    lo, hi = 0, len(text)
    while lo < hi:
        middle = (lo + hi + 1) // 2
        if body_size({"t": text[:middle]}) <= limit:
            lo = middle
        else:
            hi = middle - 1
    return text[:lo]


# ---------------------------------------------------------------- user templates


def _render_custom(
    notification: Notification,
    alerts: list[Alert],
    template: str,
    tz: tzinfo,
    test: bool,
    title: str,
    at_mobiles: tuple[str, ...],
) -> list[DingTalkMessage] | str:
    """Messages from a user template, or the error text; splits by halving the alerts."""

    def render(part: Sequence[Alert]) -> str | DingTalkMessage:
        context = template_context(notification, part, tz, test=test)
        context["mentions"] = _mention_line(at_mobiles)
        result = render_template(template, context)
        if result.text is None:
            return result.error or "the template produced no text"
        text = result.text
        missing = [m for m in at_mobiles if f"@{m}" not in text]
        if missing:
            text = f"{text}\n\n{_mention_line(missing)}"
        if test and "TEST" not in text:
            text = f"{TEST_BANNER}\n\n{text}"
        return DingTalkMessage(title, text, at_mobiles)

    out: list[DingTalkMessage] = []

    def fill(part: Sequence[Alert]) -> str | None:
        rendered = render(part)
        if isinstance(rendered, str):
            return rendered
        if rendered.size() <= MAX_MESSAGE_BYTES:
            out.append(rendered)
            return None
        if len(part) > 1:
            middle = len(part) // 2
            return fill(part[:middle]) or fill(part[middle:])
        message, slack = rendered, 0
        while message.size() > MAX_MESSAGE_BYTES:
            text = _truncate_block(rendered.text, rendered.size() - MAX_MESSAGE_BYTES + slack)
            message = DingTalkMessage(rendered.title, text, at_mobiles)
            slack += 64
        out.append(message)
        return None

    error = fill(alerts)
    if error is not None:
        return error
    if len(out) > 1:
        total = len(out)
        out = [
            DingTalkMessage(_clip(f"{m.title} ({i}/{total})", MAX_TITLE_CHARS), m.text, at_mobiles)
            for i, m in enumerate(out, start=1)
        ]
    return out


# ---------------------------------------------------------------- merging


MERGE_SEPARATOR = "\n\n---\n\n"
_SEPARATOR_JSON_BYTES = len(json.dumps(MERGE_SEPARATOR, ensure_ascii=False).encode()) - 2


def merge_messages(messages: Sequence[DingTalkMessage]) -> list[DingTalkMessage]:
    """Consecutive queued messages for one bot joined, each result within the size limit.

    Used when the rate limit holds messages back: fewer, fuller messages reach
    the group sooner than many small ones. Order is kept; @-mentions are united.
    """
    merged: list[DingTalkMessage] = []
    joiner: MessageJoiner | None = None
    for message in messages:
        if joiner is not None and joiner.size_with(message) <= MAX_MESSAGE_BYTES:
            joiner.add(message)
            continue
        if joiner is not None:
            merged.append(joiner.message())
        joiner = MessageJoiner(message)
    if joiner is not None:
        merged.append(joiner.message())
    return merged


def _json_bytes(text: str) -> int:
    """Bytes of ``text`` as a JSON string, quotes included."""
    return len(json.dumps(text, ensure_ascii=False).encode())


class MessageJoiner:
    """Messages joined one at a time with a running byte count: the size of the joined
    message with one more is known without serialising the ones already in (JSON
    escapes a string character by character, so the text's bytes add up)."""

    def __init__(self, first: DingTalkMessage) -> None:
        self.messages = [first]
        self._text_bytes = _json_bytes(first.text) - 2
        self._mobiles: dict[str, None] = {}
        self._mobile_bytes = 0
        self._add_mobiles(first.at_mobiles)

    def _add_mobiles(self, mobiles: Sequence[str]) -> None:
        for mobile in mobiles:
            if mobile not in self._mobiles:
                self._mobiles[mobile] = None
                self._mobile_bytes += _json_bytes(mobile) + 1  # with its comma

    def size_with(self, message: DingTalkMessage) -> int:
        """Bytes of the joined message if ``message`` were added."""
        new = [m for m in dict.fromkeys(message.at_mobiles) if m not in self._mobiles]
        mobile_bytes = self._mobile_bytes + sum(_json_bytes(m) + 1 for m in new)
        text_bytes = self._text_bytes + _SEPARATOR_JSON_BYTES + _json_bytes(message.text) - 2
        count = len(self.messages) + 1
        title = _clip(f"{self.messages[0].title} (+{count - 1} more)", MAX_TITLE_CHARS)
        envelope = DingTalkMessage(title, "", ()).size()
        return envelope + text_bytes + max(mobile_bytes - 1, 0)

    def add(self, message: DingTalkMessage) -> None:
        self.messages.append(message)
        self._text_bytes += _SEPARATOR_JSON_BYTES + _json_bytes(message.text) - 2
        self._add_mobiles(message.at_mobiles)

    def message(self) -> DingTalkMessage:
        return _join(self.messages)


def _join(group: Sequence[DingTalkMessage]) -> DingTalkMessage:
    if len(group) == 1:
        return group[0]
    mobiles = tuple(dict.fromkeys(m for message in group for m in message.at_mobiles))
    title = _clip(f"{group[0].title} (+{len(group) - 1} more)", MAX_TITLE_CHARS)
    return DingTalkMessage(title, MERGE_SEPARATOR.join(m.text for m in group), mobiles)


# ---------------------------------------------------------------- signing


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with DingTalk's ``timestamp`` and ``sign`` query parameters.

    sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))),
    as DingTalk's robot security settings ("加签") describe it.
    """
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    parts = urlsplit(url)
    query = "&".join(p for p in (parts.query, f"timestamp={timestamp_ms}&sign={sign}") if p)
    return urlunsplit(parts._replace(query=query))


# ---------------------------------------------------------------- answers

# DingTalk's robot API answers errors inside HTTP 200 as {"errcode": N, "errmsg": "..."}.
# Codes from DingTalk's custom-robot error table (as open-source robot clients reproduce
# it) and from answers quoted in their tests and issue threads:
#   0       ok
#   -1      "系统繁忙" (system busy): retry later (DingTalk's global error codes)
#   130101  "send too fast, exceed 20 times per minute": the bot is throttled for 10 minutes
#   410100  "发送速度太快而限流" (sending too fast, throttled)
#   310000  security setting not met; errmsg tells which: "keywords not in content",
#           "sign not match", "invalid timestamp", "ip X.X.X.X not in whitelist"
#   300001, 300005  "token is not exist"; 400101 "access_token不存在" (token not found)
#   400013  "群已被解散" (the group chat was dissolved)
#   400102  "机器人已停用" (the robot was switched off)
#   400105  unsupported message type; 400106 "机器人不存在" (the robot is not in the group)
#   430101-430104  link, text, image or content refused by DingTalk's content checks
# Throttling may also come back as {"status": ..., "punish": "..."} (KubeSphere's
# notification-manager checks both shapes).
_TRANSIENT_CODES = {
    -1: reasons.SERVER_BUSY,
    130101: reasons.RATE_LIMITED,
    410100: reasons.RATE_LIMITED,
}
_PERMANENT_CODES = {
    300001: reasons.TOKEN_NOT_FOUND,
    300005: reasons.TOKEN_NOT_FOUND,
    400101: reasons.TOKEN_NOT_FOUND,
    400013: reasons.GROUP_DISSOLVED,
    400102: reasons.BOT_DISABLED,
    400105: reasons.MESSAGE_REJECTED,
    400106: reasons.BOT_NOT_FOUND,
    430101: reasons.CONTENT_REJECTED,
    430102: reasons.CONTENT_REJECTED,
    430103: reasons.CONTENT_REJECTED,
    430104: reasons.CONTENT_REJECTED,
}
_MAX_SHOWN = 200


def classify_response(http_status: int | None, body: bytes | None) -> SendOutcome:
    """What DingTalk's answer (None: no answer at all) means for this attempt."""
    if http_status is None:
        return SendOutcome("transient", reasons.NETWORK_ERROR, None, "no answer from DingTalk")
    if http_status >= 500:
        return SendOutcome(
            "transient", reasons.SERVER_ERROR, http_status, f"DingTalk answered HTTP {http_status}"
        )
    if http_status == 429:
        return SendOutcome("transient", reasons.RATE_LIMITED, 429, "DingTalk answered HTTP 429")
    if http_status == 408:
        return SendOutcome("transient", reasons.TIMEOUT, 408, "DingTalk answered HTTP 408")
    if not 200 <= http_status < 300:
        return SendOutcome(
            "permanent",
            reasons.HTTP_ERROR,
            http_status,
            f"DingTalk answered HTTP {http_status}; check the webhook URL",
        )
    document = _json_object(body)
    if document is None:
        # A 2xx that is not DingTalk's JSON: a proxy or a captive portal in between.
        return SendOutcome(
            "transient",
            reasons.INVALID_RESPONSE,
            http_status,
            f"DingTalk answered HTTP {http_status} without a JSON errcode",
        )
    errcode = document.get("errcode")
    errmsg = _shown(document.get("errmsg"))
    status = document.get("status")
    if errcode in (None, 0) and status not in (None, 0, "0") and document.get("punish"):
        return SendOutcome(
            "transient",
            reasons.RATE_LIMITED,
            None,
            f"DingTalk throttled the bot: {_shown(document.get('punish'))}",
        )
    if errcode is None:
        return SendOutcome(
            "transient", reasons.INVALID_RESPONSE, http_status, "DingTalk's answer has no errcode"
        )
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        try:
            errcode = int(errcode)
        except (TypeError, ValueError):
            return SendOutcome(
                "transient", reasons.INVALID_RESPONSE, http_status, "errcode is not a number"
            )
    text = f"errcode {errcode}: {errmsg}" if errmsg else f"errcode {errcode}"
    if errcode == 0:
        return SendOutcome("ok", reasons.DELIVERED, 0, errmsg or "ok")
    if errcode in _TRANSIENT_CODES:
        return SendOutcome("transient", _TRANSIENT_CODES[errcode], errcode, text)
    if errcode == 310000:
        return SendOutcome("permanent", _security_reason(errmsg), errcode, text)
    reason = _PERMANENT_CODES.get(errcode) or _reason_from_message(errmsg)
    return SendOutcome("permanent", reason, errcode, text)


def _security_reason(errmsg: str) -> str:
    lowered = errmsg.lower()
    if "keyword" in lowered or "关键词" in errmsg:
        return reasons.KEYWORD_MISSING
    if "sign" in lowered or "timestamp" in lowered or "签名" in errmsg:
        return reasons.SIGNATURE_REJECTED
    if "whitelist" in lowered or "ip" in lowered.split() or "白名单" in errmsg:
        return reasons.IP_NOT_ALLOWED
    return reasons.SECURITY_CHECK_FAILED


def _reason_from_message(errmsg: str) -> str:
    lowered = errmsg.lower()
    if "token" in lowered and ("not exist" in lowered or "不存在" in errmsg):
        return reasons.TOKEN_NOT_FOUND
    if "dissol" in lowered or "解散" in errmsg:
        return reasons.GROUP_DISSOLVED
    if "停用" in errmsg or "disabled" in lowered or "stopped" in lowered:
        return reasons.BOT_DISABLED
    return reasons.MESSAGE_REJECTED


def _json_object(body: bytes | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _shown(value: object) -> str:
    if not isinstance(value, str):
        return ""
    # errmsg sometimes appends a help URL ("more: [https://...]"); keep it short.
    return _clip(" ".join(value.split()), _MAX_SHOWN)

