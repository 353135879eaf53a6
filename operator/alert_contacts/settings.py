"""Operator settings, read once at startup (never at import time)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_QUOTA = 100
DEFAULT_REGION = "CN"
DEFAULT_DINGTALK_HOSTS = ("oapi.dingtalk.com",)
DEFAULT_TIMEZONE = "Asia/Shanghai"
HTTPS_PORT = 443


@dataclass(frozen=True)
class Settings:
    quota: int = DEFAULT_QUOTA
    default_region: str = DEFAULT_REGION
    dingtalk_hosts: tuple[str, ...] = DEFAULT_DINGTALK_HOSTS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``ALERT_CONTACTS_*`` variables; raise ValueError on bad ones."""
        quota_text = env.get("ALERT_CONTACTS_QUOTA", str(DEFAULT_QUOTA)).strip()
        try:
            quota = int(quota_text)
        except ValueError:
            raise ValueError(
                f"ALERT_CONTACTS_QUOTA {quota_text!r}: must be a whole number"
            ) from None
        if quota < 0:
            raise ValueError(f"ALERT_CONTACTS_QUOTA {quota_text!r}: must not be negative")
        region = env.get("ALERT_CONTACTS_DEFAULT_REGION", DEFAULT_REGION).strip().upper()
        if len(region) != 2 or not region.isalpha():
            raise ValueError(
                f"ALERT_CONTACTS_DEFAULT_REGION {region!r}: must be a two-letter region code"
            )
        hosts_text = env.get("ALERT_CONTACTS_DINGTALK_HOSTS", ",".join(DEFAULT_DINGTALK_HOSTS))
        hosts = tuple(h.strip().lower() for h in hosts_text.split(",") if h.strip())
        if not hosts:
            raise ValueError("ALERT_CONTACTS_DINGTALK_HOSTS: at least one host is required")
        for entry in hosts:
            try:
                split_host_entry(entry)
            except ValueError as exc:
                raise ValueError(f"ALERT_CONTACTS_DINGTALK_HOSTS entry {entry!r}: {exc}") from None
        return cls(quota=quota, default_region=region, dingtalk_hosts=hosts)


def split_host_entry(entry: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` of an allowed DingTalk host; ValueError says what is wrong."""
    if "/" in entry or "@" in entry:
        raise ValueError("must be a host name (optionally :port), not a URL")
    host, colon, port_text = entry.strip().lower().partition(":")
    if not host:
        raise ValueError("the host name is empty")
    if not all(label and label.replace("-", "").isalnum() for label in host.split(".")):
        raise ValueError("must be a host name (letters, digits, '-' and '.'), optionally :port")
    if not colon:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the port {port_text!r} must be a number from 1 to 65535")
    return host, int(port_text)


def allowed_endpoints(entries: Iterable[str]) -> dict[str, frozenset[int]]:
    """Host -> the ports allowed for it: an entry with a port allows only that port
    (several entries may add several), a bare host allows the https default, 443."""
    ports: dict[str, set[int]] = {}
    for entry in entries:
        host, port = split_host_entry(entry)
        ports.setdefault(host, set()).add(HTTPS_PORT if port is None else port)
    return {host: frozenset(allowed) for host, allowed in ports.items()}


@dataclass(frozen=True)
class DeliverySettings:
    """Settings of alert delivery that the validation path does not need."""

    timezone: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    extra_ca_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeliverySettings:
        """Read ``ALERT_CONTACTS_TIMEZONE`` and ``ALERT_CONTACTS_EXTRA_CA_FILE``."""
        zone_name = env.get("ALERT_CONTACTS_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"ALERT_CONTACTS_TIMEZONE {zone_name!r}: not a known IANA time zone"
                " (for example Asia/Shanghai, Europe/Berlin or UTC)"
            ) from None
        ca_text = env.get("ALERT_CONTACTS_EXTRA_CA_FILE", "").strip()
        extra_ca = Path(ca_text) if ca_text else None
        if extra_ca is not None and not extra_ca.is_file():
            raise ValueError(
                f"ALERT_CONTACTS_EXTRA_CA_FILE {ca_text!r}: no such file"
                " (a PEM bundle of CA certificates for outbound TLS)"
            )
        return cls(timezone=zone, extra_ca_file=extra_ca)
