"""Email: subject from the alerts, text and escaped HTML, recipients in Bcc."""

from __future__ import annotations

import copy
from email import message_from_bytes, policy

from alert_contacts.domain.mail import UNDISCLOSED, build_message, render_email

from .delivery_data import FIRING_API, SHANGHAI, UTC, notification

RECIPIENTS = ["alice@example.com", "bob@example.org"]


def test_subject_names_status_count_and_group() -> None:
    assert render_email(notification(), SHANGHAI).subject == "[FIRING:1] HighLatency (team-a)"
    two = notification(alerts=[FIRING_API, dict(copy.deepcopy(FIRING_API), fingerprint="2")])
    assert render_email(two, SHANGHAI).subject == "[FIRING:2] HighLatency (team-a)"
    assert render_email(notification(), SHANGHAI, test=True).subject.startswith("[TEST] ")


def test_text_part_has_sections_times_and_links() -> None:
    text = render_email(notification(), SHANGHAI).text
    firing, resolved = text.split("Resolved (1)")
    assert "Firing (1)" in firing
    assert "Summary: p99 latency above 2s" in firing
    assert "Description: api p99 is 3.1s for 10 minutes" in firing
    assert "Started: 2026-11-26 19:20:00 CST" in firing
    assert "Silence: http://alertmanager.example:9093/#/silences/new?filter=" in firing
    assert "Ended: 2026-11-26 18:45:30 CST" in resolved
    assert "Silence" not in resolved
    assert "Started: 2026-11-26 11:20:00 UTC" in render_email(notification(), UTC).text


def test_html_escapes_alert_text() -> None:
    alert = copy.deepcopy(FIRING_API)
    alert["annotations"]["summary"] = '<img src=x onerror="alert(1)">'
    alert["labels"]["service"] = "<b>api</b>"
    html = render_email(notification(alerts=[alert]), SHANGHAI).html
    assert "<img" not in html and "<b>api" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;b&gt;api&lt;/b&gt;" in html


def test_message_is_multipart_with_recipients_in_bcc() -> None:
    message = build_message("Alerts <alerts@example.com>", RECIPIENTS, render_email(
        notification(), SHANGHAI))
    assert message["To"] == UNDISCLOSED
    assert message["Bcc"] == "alice@example.com, bob@example.org"
    assert message["From"] == "Alerts <alerts@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    # What the server receives: no Bcc header (smtplib/aiosmtplib strip it), no addresses in To.
    sent = copy.copy(message)
    del sent["Bcc"]
    wire = sent.as_bytes()
    assert b"alice@example.com" not in wire and b"bob@example.org" not in wire
    parsed = message_from_bytes(wire, policy=policy.default)
    assert parsed["Subject"] == "[FIRING:1] HighLatency (team-a)"


def test_without_bcc_recipients_are_in_to() -> None:
    message = build_message("alerts@example.com", RECIPIENTS, render_email(
        notification(), SHANGHAI), bcc=False)
    assert message["To"] == "alice@example.com, bob@example.org"
    assert message["Bcc"] is None


def test_a_user_template_renders_the_html_part_escaped() -> None:
    alert = copy.deepcopy(FIRING_API)
    alert["labels"]["service"] = "<script>"
    rendered = render_email(
        notification(alerts=[alert]),
        SHANGHAI,
        template="<p>{% for a in firing %}{{ a.labels.service }}{% endfor %}</p>",
    )
    assert rendered.template_error is None
    assert rendered.html == "<p>&lt;script&gt;</p>"
    assert "Firing (1)" in rendered.text  # text part stays the default


def test_a_broken_user_template_falls_back_and_reports() -> None:
    rendered = render_email(notification(), SHANGHAI, template="{{ missing }}")
    assert rendered.template_error is not None and "missing" in rendered.template_error
    assert "<h2>[FIRING:1] HighLatency (team-a)</h2>" in rendered.html
