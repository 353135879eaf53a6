"""Alertmanager notifications as email: subject, plain text and HTML, and the message."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .alerts import Alert, Notification, format_time, is_http_url, notification_title, silence_url
from .templates import render_template, template_context

UNDISCLOSED = "undisclosed-recipients:;"
TEST_NOTE = "This is a test message from alert-contacts-operator; no alert is firing."
MAX_SUBJECT_CHARS = 200


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    template_error: str | None = None


def render_email(
    notification: Notification,
    tz: tzinfo,
    *,
    test: bool = False,
    template: str | None = None,
) -> RenderedEmail:
    """Subject, plain text and HTML of one notification.

    A user ``template`` (Jinja2, sandboxed, autoescaped) renders the HTML part;
    the plain-text part stays the default. When the template fails the default
    HTML is used and the error returned in ``template_error``.
    """
    subject = ("[TEST] " if test else "") + notification_title(notification)
    subject = " ".join(subject.split())
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1] + "…"
    alerts = [a for a in notification.alerts if a.firing] + [
        a for a in notification.alerts if not a.firing
    ]
    text = _text(notification, alerts, tz, test, subject)
    error: str | None = None
    if template is not None:
        context = template_context(notification, alerts, tz, test=test)
        result = render_template(template, context, html=True)
        if result.text is not None:
            return RenderedEmail(subject, text, result.text, None)
        error = result.error
    return RenderedEmail(subject, text, _html(notification, alerts, tz, test, subject), error)


def _sections(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    firing = [a for a in alerts if a.firing]
    resolved = [a for a in alerts if not a.firing]
    sections = [(f"Firing ({len(firing)})", firing), (f"Resolved ({len(resolved)})", resolved)]
    return [(title, part) for title, part in sections if part]


def _facts(alert: Alert, notification: Notification, tz: tzinfo) -> list[tuple[str, str]]:
    """(label, value) rows shown for one alert, the same in text and HTML."""
    rows: list[tuple[str, str]] = []
    summary = alert.annotations.get("summary") or alert.annotations.get("message")
    description = alert.annotations.get("description")
    if summary:
        rows.append(("Summary", summary))
    if description and description != summary:
        rows.append(("Description", description))
    labels = {k: v for k, v in sorted(alert.labels.items()) if k != "alertname"}
    if labels:
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in labels.items())))
    if alert.starts_at is not None:
        rows.append(("Started", format_time(alert.starts_at, tz)))
    if not alert.firing and alert.ends_at is not None:
        rows.append(("Ended", format_time(alert.ends_at, tz)))
    return rows


def _links(alert: Alert, notification: Notification) -> list[tuple[str, str]]:
    links = []
    if is_http_url(alert.generator_url):
        links.append(("Source", alert.generator_url))
    silence = silence_url(notification.external_url, alert.labels) if alert.firing else None
    if silence:
        links.append(("Silence", silence))
    return links


def _text(
    notification: Notification, alerts: Sequence[Alert], tz: tzinfo, test: bool, subject: str
) -> str:
    lines = [subject, ""]
    if test:
        lines += [TEST_NOTE, ""]
    for title, part in _sections(alerts):
        lines += [title, "=" * len(title), ""]
        for alert in part:
            lines.append(f"* {alert.name or '(no alertname)'}")
            lines += [f"  {label}: {value}" for label, value in _facts(alert, notification, tz)]
            lines += [f"  {label}: {url}" for label, url in _links(alert, notification)]
            lines.append("")
    if notification.truncated_alerts:
        left_out = notification.truncated_alerts
        lines += [f"{left_out} more alert(s) were left out by Alertmanager.", ""]
    if is_http_url(notification.external_url):
        lines.append(f"Alertmanager: {notification.external_url}")
    return "\n".join(lines).rstrip() + "\n"


def _html(
    notification: Notification, alerts: Sequence[Alert], tz: tzinfo, test: bool, subject: str
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"></head>',
        '<body style="font-family: sans-serif; font-size: 14px;">',
        f"<h2>{e(subject)}</h2>",
    ]
    if test:
        out.append(f"<p><strong>{e(TEST_NOTE)}</strong></p>")
    for title, part in _sections(alerts):
        color = "#c0392b" if title.startswith("Firing") else "#27ae60"
        out.append(f'<h3 style="color: {color};">{e(title)}</h3>')
        for alert in part:
            out.append(f"<h4>{e(alert.name or '(no alertname)')}</h4>")
            out.append('<table cellpadding="4" style="border-collapse: collapse;">')
            for label, value in _facts(alert, notification, tz):
                out.append(f"<tr><th align=\"left\">{e(label)}</th><td>{e(value)}</td></tr>")
            out.append("</table>")
            links = _links(alert, notification)
            if links:
                out.append(
                    "<p>"
                    + " · ".join(f'<a href="{e(url)}">{e(label)}</a>' for label, url in links)
                    + "</p>"
                )
    if notification.truncated_alerts:
        out.append(
            f"<p>{notification.truncated_alerts} more alert(s) were left out by Alertmanager.</p>"
        )
    if is_http_url(notification.external_url):
        url = notification.external_url
        out.append(f'<p><a href="{e(url)}">Alertmanager</a></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_message(
    sender: str,
    recipients: Sequence[str],
    rendered: RenderedEmail,
    *,
    bcc: bool = True,
) -> EmailMessage:
    """A multipart (text + HTML) message; recipients in Bcc unless ``bcc`` is False.

    With Bcc the visible To is "undisclosed-recipients:;", so members do not
    see each other's addresses; the SMTP client takes the envelope recipients
    from Bcc and drops the header before sending.
    """
    if not recipients:
        raise ValueError("recipients: at least one address is required")
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    if bcc:
        message["To"] = UNDISCLOSED
        message["Bcc"] = ", ".join(recipients)
    else:
        message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = _domain(sender)
    message["Message-ID"] = make_msgid(domain=domain) if domain else make_msgid()
    # RFC 3834: tells vacation responders and mailing lists this is machine mail.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _domain(sender: str) -> str | None:
    try:
        address = Address(addr_spec=sender.strip().rpartition("<")[2].rstrip(">"))
    except (ValueError, IndexError):
        return None
    return address.domain or None
