"""Command-line options of the operator process; each mirrors an environment variable."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from alert_contacts.domain.dedup import DEFAULT_WINDOW
from alert_contacts.runtime.leaderlabel import own_pod
from alert_contacts.runtime.lease import (
    LeaseConfig,
    LeaseTimings,
    default_identity,
    default_namespace,
)
from alert_contacts.runtime.smtp import SmtpSettings
from alert_contacts.settings import DeliverySettings, Settings

WebhookMode = Literal["local", "service", "none"]


@dataclass(frozen=True)
class RunOptions:
    settings: Settings
    webhook: WebhookMode
    webhook_port: int  # 0: any free port (local mode only)
    webhook_cert_dir: Path | None  # tls.crt + tls.key, service mode
    webhook_hostnames: tuple[str, ...]  # extra certificate names, local mode
    webhook_config_name: str  # the managed ValidatingWebhookConfiguration, local mode
    health_port: int  # 0: no health endpoint
    metrics_port: int  # 0: no metrics endpoint
    verbose: bool
    lease: LeaseConfig
    receiver: ReceiverOptions = field(default_factory=lambda: ReceiverOptions())
    delivery: DeliveryOptions = field(default_factory=lambda: DeliveryOptions())


# flag -> (environment variable, default, help)
_ENV_FLAGS: dict[str, tuple[str, str, str]] = {
    "--quota": ("ALERT_CONTACTS_QUOTA", "100",
                "most Contacts plus DingTalkBots accepted cluster-wide"),
    "--default-region": ("ALERT_CONTACTS_DEFAULT_REGION", "CN",
                         "region for mobile numbers written without a country code"),
    "--dingtalk-hosts": ("ALERT_CONTACTS_DINGTALK_HOSTS", "oapi.dingtalk.com",
                         "comma-separated hosts allowed in DingTalk webhook URLs (https only);"
                         " host:port allows only that port for the host"),
    "--webhook": ("ALERT_CONTACTS_WEBHOOK", "local",
                  "local: serve on 127.0.0.1 with generated certificates and manage the "
                  "ValidatingWebhookConfiguration; service: serve on 0.0.0.0 with "
                  "certificates from --webhook-cert-dir, the chart owns the configuration; "
                  "none: no admission webhook"),
    "--webhook-port": ("ALERT_CONTACTS_WEBHOOK_PORT", "",
                       "webhook port (default: any free port in local mode, 9443 in service mode)"),
    "--webhook-cert-dir": ("ALERT_CONTACTS_WEBHOOK_CERT_DIR", "",
                           "directory with tls.crt and tls.key (service mode)"),
    "--webhook-hostnames": ("ALERT_CONTACTS_WEBHOOK_HOSTNAMES", "",
                            "extra comma-separated names for the local webhook certificate"),
    "--webhook-config-name": ("ALERT_CONTACTS_WEBHOOK_CONFIG_NAME", "alert-contacts.dev",
                              "name of the managed ValidatingWebhookConfiguration (local mode)"),
    "--health-port": ("ALERT_CONTACTS_HEALTH_PORT", "8080",
                      "port of the /healthz endpoint on 0.0.0.0 (0 disables)"),
    "--metrics-port": ("ALERT_CONTACTS_METRICS_PORT", "9090",
                       "port of the Prometheus /metrics endpoint on 0.0.0.0 (0 disables)"),
    # Leader election: every replica indexes and admits; the Lease holder reconciles.
    "--leader-election": ("ALERT_CONTACTS_LEADER_ELECTION", "true",
                          "true: reconcile only while holding the Lease (run any number of "
                          "replicas); false: always reconcile (exactly one replica)"),
    "--lease-name": ("ALERT_CONTACTS_LEASE_NAME", "alert-contacts-operator",
                     "name of the coordination.k8s.io/v1 Lease"),
    "--lease-namespace": ("ALERT_CONTACTS_LEASE_NAMESPACE", "",
                          "namespace of the Lease (default: $POD_NAMESPACE, else the service "
                          "account's namespace, else default)"),
    "--lease-identity": ("ALERT_CONTACTS_LEASE_IDENTITY", "",
                         "this replica's name in the Lease (default: $POD_NAME, else "
                         "hostname_pid)"),
    "--lease-duration": ("ALERT_CONTACTS_LEASE_DURATION", "15",
                         "seconds a Lease not renewed stays with its holder"),
    "--lease-renew-deadline": ("ALERT_CONTACTS_LEASE_RENEW_DEADLINE", "10",
                               "seconds after its last renewal a leader stops writing (must be "
                               "under the lease duration)"),
    "--lease-retry-period": ("ALERT_CONTACTS_LEASE_RETRY_PERIOD", "2",
                             "seconds between attempts to acquire or renew the Lease"),
}


def _port(flag: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: must be a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{flag} {text!r}: must be between 0 and 65535")
    return port


def _seconds(flag: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: must be a number of seconds") from None
    if not 0 < seconds < 3600:
        raise ValueError(f"{flag} {text!r}: must be between 0 and 3600 seconds")
    return seconds


def _boolean(flag: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{flag} {text!r}: must be true or false")
    return value in ("true", "1", "yes")


def _lease(args: argparse.Namespace, env: Mapping[str, str]) -> LeaseConfig:
    timings = LeaseTimings(
        lease_duration=_seconds("--lease-duration", args.lease_duration),
        renew_deadline=_seconds("--lease-renew-deadline", args.lease_renew_deadline),
        retry_period=_seconds("--lease-retry-period", args.lease_retry_period),
    )
    return LeaseConfig(
        enabled=_boolean("--leader-election", args.leader_election),
        namespace=args.lease_namespace or default_namespace(env),
        name=args.lease_name,
        identity=args.lease_identity or default_identity(env),
        timings=timings,
        pod=own_pod(env),
    )


# ---------------------------------------------------------------- receiver

RECEIVER_TOKEN_ENV = "ALERT_CONTACTS_RECEIVER_TOKEN"


@dataclass(frozen=True)
class ReceiverOptions:
    """The Alertmanager receiver's own server (its own port, off the admission port)."""

    port: int = 8088  # 0: no receiver
    address: str = "127.0.0.1"
    cert_dir: Path | None = None  # tls.crt + tls.key: serve HTTPS
    # The bearer token; read from the environment or a file, never a flag (ps shows flags).
    token: str | None = field(default=None, repr=False)
    token_source: str = "none"  # where the token came from, for the startup log line
    max_body_bytes: int = 1024 * 1024
    max_concurrency: int = 32
    # Seconds a delivered notification is remembered, so Alertmanager's retry of it is
    # not sent again; shorter than any repeat_interval (its reminders must go out).
    dedup_window: float = DEFAULT_WINDOW


@dataclass(frozen=True)
class Templates:
    """User templates (Jinja2, sandboxed): DingTalk markdown and the email's HTML part.
    None: the built-in rendering. A failing template falls back to it, reported."""

    dingtalk: str | None = None
    email: str | None = None


TEMPLATE_FILES = {"dingtalk": "dingtalk.md.j2", "email": "email.html.j2"}


def _templates(directory: str) -> Templates:
    if not directory:
        return Templates()
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"ALERT_CONTACTS_TEMPLATES_DIR {directory!r}: not a directory")
    found: dict[str, str | None] = {}
    for key, name in TEMPLATE_FILES.items():
        file = path / name
        try:
            found[key] = file.read_text(encoding="utf-8") if file.is_file() else None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"ALERT_CONTACTS_TEMPLATES_DIR {directory!r}: cannot read "
                             f"{name}: {e}") from None
    return Templates(**found)


@dataclass(frozen=True)
class DeliveryOptions:
    """Where alerts go out: time zone and extra CA (DeliverySettings), SMTP (None: no email)."""

    settings: DeliverySettings = field(default_factory=DeliverySettings)
    smtp: SmtpSettings | None = None
    bcc: bool = True  # recipients in Bcc (ALERT_CONTACTS_SMTP_BCC=false: in To)
    templates: Templates = field(default_factory=Templates)


def _delivery_options(env: Mapping[str, str]) -> DeliveryOptions:
    bcc_text = env.get("ALERT_CONTACTS_SMTP_BCC", "true").strip().lower()
    if bcc_text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"ALERT_CONTACTS_SMTP_BCC {bcc_text!r}: must be true or false")
    return DeliveryOptions(
        settings=DeliverySettings.from_env(env),
        smtp=SmtpSettings.from_env(env),
        bcc=bcc_text in ("true", "1", "yes"),
        # A mounted ConfigMap: dingtalk.md.j2 and/or email.html.j2.
        templates=_templates(env.get("ALERT_CONTACTS_TEMPLATES_DIR", "").strip()),
    )


_RECEIVER_FLAGS: dict[str, tuple[str, str, str]] = {
    "--receiver-port": ("ALERT_CONTACTS_RECEIVER_PORT", "8088",
                        "port of the Alertmanager receiver (POST /v1/alerts/NAMESPACE/GROUP); "
                        "0 disables it"),
    "--receiver-address": ("ALERT_CONTACTS_RECEIVER_ADDRESS", "",
                           "address the receiver binds (default 127.0.0.1 with --webhook local, "
                           "else 0.0.0.0)"),
    "--receiver-cert-dir": ("ALERT_CONTACTS_RECEIVER_CERT_DIR", "",
                            "directory with tls.crt and tls.key: serve the receiver over HTTPS "
                            "(default plain HTTP)"),
    "--receiver-token-file": ("ALERT_CONTACTS_RECEIVER_TOKEN_FILE", "",
                              "file holding the bearer token Alertmanager must send (a mounted "
                              f"Secret); {RECEIVER_TOKEN_ENV} gives it inline instead"),
    "--receiver-max-body": ("ALERT_CONTACTS_RECEIVER_MAX_BODY", "1048576",
                            "largest request body accepted, in bytes (larger: 413)"),
    "--receiver-max-concurrency": ("ALERT_CONTACTS_RECEIVER_MAX_CONCURRENCY", "32",
                                   "requests handled at once (more: 503 with Retry-After)"),
    "--receiver-dedup-window": ("ALERT_CONTACTS_RECEIVER_DEDUP_WINDOW", f"{DEFAULT_WINDOW:.0f}",
                                "seconds a delivered notification is remembered so that "
                                "Alertmanager's retry of it is not sent again; keep it shorter "
                                "than every route's repeat_interval"),
}


def _positive(flag: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: must be a whole number") from None
    if value < 1:
        raise ValueError(f"{flag} {text!r}: must be at least 1")
    return value


def _receiver_options(args: argparse.Namespace, env: Mapping[str, str],
                      webhook: str) -> ReceiverOptions:
    token: str | None = None
    source = "none"
    if args.receiver_token_file:
        path = Path(args.receiver_token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ValueError(f"--receiver-token-file {str(path)!r}: cannot read it: "
                             f"{e.strerror}") from None
        source = f"file {path}"
    elif env.get(RECEIVER_TOKEN_ENV, "").strip():
        token = env[RECEIVER_TOKEN_ENV].strip()
        source = RECEIVER_TOKEN_ENV
    cert_dir = Path(args.receiver_cert_dir) if args.receiver_cert_dir else None
    address = args.receiver_address.strip() or ("127.0.0.1" if webhook == "local" else "0.0.0.0")
    return ReceiverOptions(
        port=_port("--receiver-port", args.receiver_port),
        address=address,
        cert_dir=cert_dir,
        token=token or None,
        token_source=source if token else "none",
        max_body_bytes=_positive("--receiver-max-body", args.receiver_max_body),
        max_concurrency=_positive("--receiver-max-concurrency", args.receiver_max_concurrency),
        dedup_window=_seconds("--receiver-dedup-window", args.receiver_dedup_window),
    )


def parse(argv: Sequence[str], env: Mapping[str, str]) -> RunOptions:
    """Flags win over environment variables, which win over defaults.

    Raises ValueError (or exits via argparse) with a message naming the option.
    """
    parser = argparse.ArgumentParser(
        prog="python -m alert_contacts",
        description="Run the alert-contacts operator (all namespaces; the Lease holder writes).",
    )
    for flag, (var, default, help_) in {**_ENV_FLAGS, **_RECEIVER_FLAGS}.items():
        parser.add_argument(flag, default=env.get(var, default),
                            help=f"{help_} [env {var}, default {default or 'none'}]")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(list(argv))

    settings = Settings.from_env({
        "ALERT_CONTACTS_QUOTA": args.quota,
        "ALERT_CONTACTS_DEFAULT_REGION": args.default_region,
        "ALERT_CONTACTS_DINGTALK_HOSTS": args.dingtalk_hosts,
    })
    mode = args.webhook.strip().lower()
    if mode not in ("local", "service", "none"):
        raise ValueError(f"--webhook {args.webhook!r}: must be local, service or none")
    default_port = "9443" if mode == "service" else "0"
    cert_dir = Path(args.webhook_cert_dir) if args.webhook_cert_dir else None
    if mode == "service" and cert_dir is None:
        raise ValueError("--webhook service needs --webhook-cert-dir with tls.crt and tls.key")
    return RunOptions(
        settings=settings,
        webhook=mode,
        webhook_port=_port("--webhook-port", args.webhook_port or default_port),
        webhook_cert_dir=cert_dir,
        webhook_hostnames=tuple(h.strip() for h in args.webhook_hostnames.split(",") if h.strip()),
        webhook_config_name=args.webhook_config_name,
        health_port=_port("--health-port", args.health_port),
        metrics_port=_port("--metrics-port", args.metrics_port),
        verbose=args.verbose,
        lease=_lease(args, env),
        receiver=_receiver_options(args, env, mode),
        delivery=_delivery_options(env),
    )
