"""Logging: kopf's format, without personal data and without per-event chatter."""

from __future__ import annotations

import logging

import kopf


class _NoAdmissionRefusals(logging.Filter):
    """kopf logs every refused admission with its full message, which names the
    mobile number or email refused. Our admission handlers log the refusal
    (redacted) themselves, so kopf's copy is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Webhook ") and " failed permanently" in message)


def configure(verbose: bool) -> None:
    kopf.configure(verbose=verbose)
    logging.getLogger("kopf.objects").addFilter(_NoAdmissionRefusals())
    if not verbose:
        # One line per watch event ("Handler ... succeeded") and per webhook
        # request is noise at thousands of objects; warnings and errors remain.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
