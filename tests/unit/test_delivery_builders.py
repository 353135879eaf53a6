"""The pure builders of delivery live in domain/ (no clock, no network): a target's
outcome, the test notification, the system notices' DingTalk message and email."""

from __future__ import annotations

from datetime import UTC, datetime

from alert_contacts.domain import delivery
from alert_contacts.domain.delivery import worst
from alert_contacts.domain.notices import Notice, notice_email, notice_message
from alert_contacts.domain.outcome import SendOutcome
from alert_contacts.domain.types import ObjectRef

OK = SendOutcome("ok", "Delivered")
BUSY = SendOutcome("transient", "ServerError", 500)
GONE = SendOutcome("permanent", "TokenNotFound", 300001)


def test_a_targets_outcome_is_its_worst_message() -> None:
    assert worst([OK, BUSY, GONE, OK]) == GONE
    assert worst([OK, BUSY]) == BUSY
    assert worst([OK]) == OK


def test_the_test_notification_is_marked_and_takes_its_time_from_the_caller() -> None:
    ref = ObjectRef("DingTalkBot", "team", "oncall")
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    first, second = delivery.test_notification(ref, now), delivery.test_notification(ref, now)
    assert first == second  # pure: no clock read inside
    assert first.receiver == "alert-contacts-test" and first.alerts[0].starts_at == now


def test_notices_become_a_dingtalk_message_and_an_email() -> None:
    notice = Notice("quota", "Quota almost full", "95 of 100 <used>")
    message = notice_message(notice)
    assert message.title == "Quota almost full" and "95 of 100" in message.text
    mail = notice_email(notice, "am@example.com", ["a@example.com"], bcc=True)
    assert mail["Subject"] == "Quota almost full" and mail["Bcc"] == "a@example.com"
    html_part = mail.get_body(("html",))
    assert html_part is not None and "&lt;used&gt;" in html_part.get_content()


def test_one_tls_failure_description_for_dingtalk_and_smtp() -> None:
    import ssl

    from alert_contacts.runtime.tlsclient import tls_failure
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    assert tls_failure(error) == "self-signed certificate"
    assert tls_failure(ConnectionResetError()) == "ConnectionResetError"
