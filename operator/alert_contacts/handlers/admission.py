"""Admission: the fast path that refuses what the operator can already see.

The same validation functions as the reconciler, the same ordering for
duplicates, the same messages. Refusals are 4xx (422 invalid, 409 duplicate,
403 quota): a 5xx would read as a server fault that is worth retrying. Only
"still starting" is a 503, because retrying is the right answer to it (GitOps
tools do so on their next sync). Concurrent requests can both pass here; the
reconciler is the authority and settles them. The pure decision is
``domain.admission.admit_claimant``, asking the reconciler's decision engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from alert_contacts import metrics
from alert_contacts.domain.admission import admit_claimant
from alert_contacts.domain.groups import evaluate_group, member_refs
from alert_contacts.domain.plan import bot_verdict
from alert_contacts.domain.records import ObjectRecord, record_of
from alert_contacts.domain.types import GROUP, VERSION, Verdict
from alert_contacts.domain.validation import validate_contact, validate_group
from alert_contacts.runtime.reconciler import Reconciler

logger = logging.getLogger(__name__)

OPERATIONS = ["CREATE", "UPDATE"]


def _refuse(kind: str, reason: str, code: int, message: str) -> kopf.AdmissionError:
    # The message names the refused value (it goes back to the requester); the
    # log line names only the reason, so no mobile number or email reaches logs.
    metrics.admission(kind, str(reason))
    logger.info("refused a %s: %s (HTTP %d)", kind, reason, code)
    return kopf.AdmissionError(message, code=code)


def _metadata_only(operation: str, body: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    # Metadata-only edits (labels for a batch delete, annotations) never depend on
    # the spec's validity, so they are always let through.
    return operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec")


def _reconciler(memo: kopf.Memo, kind: str) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    if not reconciler.synced.is_set():
        raise _refuse(
            kind, "NotReady", 503,
            "the alert-contacts operator is starting and has not yet seen all existing "
            "contacts and bots; retry in a few seconds",
        )
    return reconciler


def _admit_claimant(
    kind: str,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    memo: kopf.Memo,
    warnings: list[str],
) -> None:
    reconciler = _reconciler(memo, kind)
    settings = reconciler.settings
    engine = reconciler.engine
    secrets = engine.secret_index()

    def verdict_of(record: ObjectRecord) -> Verdict:
        # The spec the engine holds for this object (an edit's old spec, mostly) has
        # its verdict there already, kept current as Secrets change.
        known, candidate = engine.record(record.ref), engine.candidate(record.ref)
        if known is not None and candidate is not None and known.spec == record.spec:
            return candidate.verdict
        if kind == "Contact":
            return validate_contact(record.spec, settings)
        return bot_verdict(record, secrets, settings)

    record = record_of(kind, body)
    if kind == "DingTalkBot":
        webhook = record.spec.get("webhook")
        if isinstance(webhook, Mapping) and webhook.get("url"):
            warnings.append(
                "spec.webhook.url holds the bot's access token in plain text in this object; "
                "prefer spec.webhook.secretRef to a Secret"
            )
    decision = admit_claimant(
        verdict_of(record),
        verdict_of(record_of(kind, old)) if old else None,
        record.ref,
        engine,
        settings.quota,
    )
    warnings.extend(decision.warnings)
    if decision.code is not None:
        raise _refuse(kind, decision.reason, decision.code, decision.message)
    metrics.admission(kind, "Allowed")


def _admit_group(
    body: Mapping[str, Any], memo: kopf.Memo, warnings: list[str]
) -> None:
    verdict = validate_group(body.get("spec") or {})
    if not verdict.valid:
        raise _refuse("ContactGroup", verdict.reason, 422, verdict.message)
    reconciler: Reconciler = memo.reconciler
    if reconciler.synced.is_set():
        record: ObjectRecord = record_of("ContactGroup", body)
        # Readiness does not matter for this warning: existence does.
        engine = reconciler.engine
        members = member_refs(record.ref.namespace, record.spec)
        existing = {ref: True for ref in members if ref in engine}
        group = evaluate_group(record.ref.namespace, record.spec, existing)
        if group.missing:
            warnings.append(
                f"{group.message}; GitOps may create them later, the group stays not Ready "
                "until they exist"
            )
    metrics.admission("ContactGroup", "Allowed")


@kopf.on.validate(GROUP, VERSION, "contacts", id="contacts", operations=OPERATIONS)
async def admit_contact(
    body: kopf.Body, old: Any, operation: str, memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    if not _metadata_only(operation, body, old):
        _admit_claimant("Contact", body, old if operation == "UPDATE" else None, memo, warnings)


@kopf.on.validate(GROUP, VERSION, "dingtalkbots", id="dingtalkbots", operations=OPERATIONS)
async def admit_bot(
    body: kopf.Body, old: Any, operation: str, memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    if not _metadata_only(operation, body, old):
        _admit_claimant("DingTalkBot", body, old if operation == "UPDATE" else None, memo, warnings)


@kopf.on.validate(GROUP, VERSION, "contactgroups", id="contactgroups", operations=OPERATIONS)
async def admit_group(
    body: kopf.Body, old: Any, operation: str, memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    if not _metadata_only(operation, body, old):
        _admit_group(body, memo, warnings)
