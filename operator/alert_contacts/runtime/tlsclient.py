"""The TLS context for outbound connections (DingTalk, SMTP)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(extra_ca_file: Path | None) -> ssl.SSLContext:
    """The system's trusted CAs, plus those in ``extra_ca_file`` (a PEM bundle) if given.

    The extra bundle is for private DingTalk deployments and internal mail
    relays; it adds to the system trust store and replaces nothing.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if extra_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(extra_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"extra CA file {str(extra_ca_file)!r}: cannot be loaded as PEM certificates"
                f" ({exc.__class__.__name__})"
            ) from None
    return context


def tls_failure(exc: BaseException) -> str:
    """Why a TLS handshake failed, without the peer's data: the verification message
    (an untrusted or expired certificate) or the error's reason or class."""
    cause = getattr(exc, "certificate_error", None)  # aiohttp's ClientConnectorCertificateError
    if isinstance(cause, BaseException):
        why = getattr(cause, "verify_message", "") or "verify failed"
        return f"certificate not trusted ({cause.__class__.__name__}: {why})"
    if isinstance(exc, ssl.SSLError):
        return str(getattr(exc, "verify_message", None) or exc.reason or exc.__class__.__name__)
    return exc.__class__.__name__
