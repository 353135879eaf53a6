"""Prometheus metrics: objects by kind and Ready reason, quota, admission, reconcile time,
full garbage collections, and delivery (notifications, messages per channel and reason,
queue depth, latency)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from alert_contacts.domain.plan import Plan
    from alert_contacts.settings import Settings

OBJECTS = Gauge(
    "alert_contacts_objects",
    "Contacts, DingTalkBots and ContactGroups by kind and the reason of their Ready condition.",
    ["kind", "reason"],
)
QUOTA_USED = Gauge(
    "alert_contacts_quota_used", "Contacts and DingTalkBots currently counted against the quota."
)
QUOTA_LIMIT = Gauge("alert_contacts_quota_limit", "The configured quota.")
ADMISSIONS = Counter(
    "alert_contacts_admission_decisions",
    "Admission webhook decisions by kind and result (allowed, or the refusal reason).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "alert_contacts_reconcile_duration_seconds",
    "Duration of one reconcile pass over all objects, including its status writes.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STATUS_WRITES = Counter(
    "alert_contacts_status_writes", "Status patches written by the reconciler."
)

FULL_COLLECTIONS = Histogram(
    "alert_contacts_gc_full_collection_seconds",
    "Pauses of Python's full (generation 2) cyclic garbage collections; everything that "
    "survives one is frozen, so the next walks only what was allocated since.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

_seen: set[tuple[str, str]] = set()


def observe_pass(plan: Plan, writes: int, seconds: float, settings: Settings) -> None:
    for labels in _seen - set(plan.reasons):
        OBJECTS.labels(*labels).set(0)  # a reason no object has any more reads 0, not stale
    for (kind, reason), count in plan.reasons.items():
        OBJECTS.labels(kind, reason).set(count)
    _seen.update(plan.reasons)
    QUOTA_USED.set(plan.in_quota)
    QUOTA_LIMIT.set(settings.quota)
    RECONCILE_SECONDS.observe(seconds)
    STATUS_WRITES.inc(writes)


def admission(kind: str, result: str) -> None:
    ADMISSIONS.labels(kind, result).inc()


# ---------------------------------------------------------------- delivery

NOTIFICATIONS = Counter(
    "alert_contacts_notifications_received",
    "Alertmanager notifications received, by result (delivered, retry, unauthorized, "
    "malformed, unknown_group, too_large, busy, not_leader, timeout).",
    ["result"],
)
MESSAGES_SENT = Counter(
    "alert_contacts_messages_sent", "Messages delivered, by channel (dingtalk, email).",
    ["channel"],
)
MESSAGES_FAILED = Counter(
    "alert_contacts_messages_failed",
    "Messages that failed for good or after their retries, by channel and reason.",
    ["channel", "reason"],
)
MESSAGES_RETRIED = Counter(
    "alert_contacts_messages_retried", "Attempts retried after a transient failure.",
    ["channel", "reason"],
)
MESSAGES_SKIPPED = Counter(
    "alert_contacts_messages_skipped",
    "Messages not sent, by channel and reason (duplicate: the target already had it; "
    "smtp_not_configured).",
    ["channel", "reason"],
)
QUEUE_DEPTH = Gauge(
    "alert_contacts_dingtalk_queue_depth",
    "Messages waiting in the DingTalk send queues (all robots), e.g. for the rate limit.",
)
DELIVERY_SECONDS = Histogram(
    "alert_contacts_delivery_duration_seconds",
    "From receiving a notification to its last message's outcome, per channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
NOTICES = Counter(
    "alert_contacts_system_notices",
    "System notices by result (sent, failed, smtp_not_configured).",
    ["result"],
)


def notification_received(result: str) -> None:
    NOTIFICATIONS.labels(result).inc()


def serve(port: int) -> None:
    start_http_server(port, addr="0.0.0.0")
