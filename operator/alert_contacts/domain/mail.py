"""Alertmanager notifications as email: subject, plain text and HTML, and the message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from email.message import EmailMessage

from .alerts import Notification


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
    raise NotImplementedError


def build_message(
    sender: str,
    recipients: Sequence[str],
    rendered: RenderedEmail,
    *,
    bcc: bool = True,
) -> EmailMessage:
    """A multipart (text + HTML) message; recipients in Bcc unless ``bcc`` is False."""
    raise NotImplementedError
