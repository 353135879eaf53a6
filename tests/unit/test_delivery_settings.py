"""Delivery settings: allowed DingTalk hosts with ports, time zone, extra CA, SMTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alert_contacts.domain.validation import check_webhook_url
from alert_contacts.runtime.smtp import SmtpSettings
from alert_contacts.settings import (
    DeliverySettings,
    Settings,
    allowed_endpoints,
    split_host_entry,
)

TOKEN = "0123456789abcdef" * 4


def _url(netloc: str) -> str:
    return f"https://{netloc}/robot/send?access_token={TOKEN}"


# ---------------------------------------------------------------- DingTalk hosts


def test_host_entries_may_carry_a_port() -> None:
    settings = Settings.from_env({"ALERT_CONTACTS_DINGTALK_HOSTS": "oapi.dingtalk.com, Fake:8443"})
    assert settings.dingtalk_hosts == ("oapi.dingtalk.com", "fake:8443")
    assert split_host_entry("fake:8443") == ("fake", 8443)
    assert split_host_entry("oapi.dingtalk.com") == ("oapi.dingtalk.com", None)
    assert allowed_endpoints(["a", "b:8443", "b:9443"]) == {
        "a": frozenset({443}),
        "b": frozenset({8443, 9443}),
    }


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("host:", "port ''"),
        ("host:0", "port '0'"),
        ("host:70000", "port '70000'"),
        ("host:https", "port 'https'"),
        (":8443", "host name is empty"),
        ("ho st", "must be a host name"),
        ("a..b", "must be a host name"),
        ("https://host", "not a URL"),
    ],
)
def test_a_bad_host_entry_is_refused_naming_it(entry: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env({"ALERT_CONTACTS_DINGTALK_HOSTS": f"oapi.dingtalk.com,{entry}"})
    assert "ALERT_CONTACTS_DINGTALK_HOSTS" in str(caught.value)
    assert expected in str(caught.value)


def test_a_host_with_a_port_allows_that_port_only() -> None:
    hosts = ("oapi.dingtalk.com", "fake.test:8443")
    assert check_webhook_url(_url("fake.test:8443"), hosts) == ("fake.test", TOKEN)
    refused = check_webhook_url(_url("fake.test"), hosts)
    assert isinstance(refused, str) and "port 443" in refused and "8443" in refused
    refused = check_webhook_url(_url("fake.test:9443"), hosts)
    assert isinstance(refused, str) and "port 9443" in refused


def test_a_host_without_a_port_still_allows_only_443() -> None:
    hosts = ("oapi.dingtalk.com",)
    assert check_webhook_url(_url("oapi.dingtalk.com:443"), hosts) == ("oapi.dingtalk.com", TOKEN)
    refused = check_webhook_url(_url("oapi.dingtalk.com:8443"), hosts)
    assert isinstance(refused, str) and "port 8443" in refused


def test_the_port_of_one_host_does_not_open_another() -> None:
    refused = check_webhook_url(_url("oapi.dingtalk.com:8443"), ("oapi.dingtalk.com", "x:8443"))
    assert isinstance(refused, str) and "port 8443" in refused


# ---------------------------------------------------------------- time zone and CA


def test_delivery_defaults() -> None:
    settings = DeliverySettings.from_env({})
    assert settings.timezone == ZoneInfo("Asia/Shanghai")
    assert settings.extra_ca_file is None


def test_time_zone_and_ca_file_are_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = DeliverySettings.from_env(
        {"ALERT_CONTACTS_TIMEZONE": "Europe/Berlin", "ALERT_CONTACTS_EXTRA_CA_FILE": str(ca)}
    )
    assert settings.timezone == ZoneInfo("Europe/Berlin")
    assert settings.extra_ca_file == ca


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "CST+8"])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="ALERT_CONTACTS_TIMEZONE"):
        DeliverySettings.from_env({"ALERT_CONTACTS_TIMEZONE": zone})


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ALERT_CONTACTS_EXTRA_CA_FILE .*no such file"):
        DeliverySettings.from_env({"ALERT_CONTACTS_EXTRA_CA_FILE": str(tmp_path / "none.pem")})


# ---------------------------------------------------------------- SMTP


def test_no_smtp_host_means_no_email() -> None:
    assert SmtpSettings.from_env({}) is None
    assert SmtpSettings.from_env({"ALERT_CONTACTS_SMTP_HOST": "  "}) is None


def test_smtp_settings_are_read_with_default_ports() -> None:
    env = {
        "ALERT_CONTACTS_SMTP_HOST": "smtp.example.com",
        "ALERT_CONTACTS_SMTP_USERNAME": "alerts",
        "ALERT_CONTACTS_SMTP_PASSWORD": "s3cret",
        "ALERT_CONTACTS_SMTP_FROM": "Alerts <alerts@example.com>",
    }
    settings = SmtpSettings.from_env(env)
    assert settings is not None
    assert (settings.host, settings.port, settings.tls) == ("smtp.example.com", 587, "starttls")
    assert settings.sender == "Alerts <alerts@example.com>"
    assert "s3cret" not in repr(settings)
    implicit = SmtpSettings.from_env({**env, "ALERT_CONTACTS_SMTP_TLS": "TLS"})
    assert implicit is not None and (implicit.port, implicit.tls) == (465, "tls")
    custom = SmtpSettings.from_env({**env, "ALERT_CONTACTS_SMTP_PORT": "2525"})
    assert custom is not None and custom.port == 2525
    relay = SmtpSettings.from_env(
        {"ALERT_CONTACTS_SMTP_HOST": "relay", "ALERT_CONTACTS_SMTP_TLS": "none",
         "ALERT_CONTACTS_SMTP_FROM": "a@example.com"}
    )
    assert relay is not None and (relay.port, relay.username, relay.password) == (25, None, None)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ALERT_CONTACTS_SMTP_TLS": "ssl"}, "ALERT_CONTACTS_SMTP_TLS 'ssl'"),
        ({"ALERT_CONTACTS_SMTP_PORT": "smtp"}, "ALERT_CONTACTS_SMTP_PORT 'smtp'"),
        ({"ALERT_CONTACTS_SMTP_PORT": "0"}, "ALERT_CONTACTS_SMTP_PORT '0'"),
        ({"ALERT_CONTACTS_SMTP_FROM": ""}, "ALERT_CONTACTS_SMTP_FROM: is required"),
        ({"ALERT_CONTACTS_SMTP_FROM": "not an address"}, "not an email address"),
        ({"ALERT_CONTACTS_SMTP_PASSWORD": ""}, "ALERT_CONTACTS_SMTP_PASSWORD: is required"),
        ({"ALERT_CONTACTS_SMTP_TLS": "none"}, "unencrypted"),
        ({"ALERT_CONTACTS_SMTP_TIMEOUT": "-1"}, "ALERT_CONTACTS_SMTP_TIMEOUT"),
    ],
)
def test_bad_smtp_settings_are_refused_naming_the_variable(
    changes: dict[str, str], expected: str
) -> None:
    env = {
        "ALERT_CONTACTS_SMTP_HOST": "smtp.example.com",
        "ALERT_CONTACTS_SMTP_USERNAME": "alerts",
        "ALERT_CONTACTS_SMTP_PASSWORD": "s3cret",
        "ALERT_CONTACTS_SMTP_FROM": "alerts@example.com",
        **changes,
    }
    with pytest.raises(ValueError) as caught:
        SmtpSettings.from_env(env)
    assert expected in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_the_charts_schema_accepts_a_host_with_a_port() -> None:
    schema_file = (
        Path(__file__).parents[2] / "deploy/helm/alert-contacts-operator/values.schema.json"
    )
    schema = json.loads(schema_file.read_text())
    pattern = re.compile(schema["properties"]["dingtalkHosts"]["items"]["pattern"])
    for entry in ("oapi.dingtalk.com", "fake.test:8443"):
        assert pattern.search(entry) and split_host_entry(entry)
    for entry in ("https://fake.test", "fake.test:port", "fake.test:8443/x"):
        assert not pattern.search(entry)
