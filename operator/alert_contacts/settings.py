"""Operator settings, read once at startup (never at import time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_QUOTA = 100
DEFAULT_REGION = "CN"
DEFAULT_DINGTALK_HOSTS = ("oapi.dingtalk.com",)


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
        return cls(quota=quota, default_region=region, dingtalk_hosts=hosts)
