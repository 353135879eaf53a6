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
