"""Command-line options of the operator process; each mirrors an environment variable."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alert_contacts.settings import Settings

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
}


def _port(flag: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: must be a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{flag} {text!r}: must be between 0 and 65535")
    return port


def parse(argv: Sequence[str], env: Mapping[str, str]) -> RunOptions:
    """Flags win over environment variables, which win over defaults.

    Raises ValueError (or exits via argparse) with a message naming the option.
    """
    parser = argparse.ArgumentParser(
        prog="python -m alert_contacts",
        description="Run the alert-contacts operator (all namespaces, one active replica).",
    )
    for flag, (var, default, help_) in _ENV_FLAGS.items():
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
    )
