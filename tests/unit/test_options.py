"""Operator options: flags mirror environment variables, bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_contacts.runtime.options import parse
from alert_contacts.settings import Settings


def test_defaults() -> None:
    options = parse([], {})
    assert options.settings == Settings(quota=100, default_region="CN",
                                        dingtalk_hosts=("oapi.dingtalk.com",))
    assert options.webhook == "local" and options.webhook_port == 0
    assert (options.health_port, options.metrics_port) == (8080, 9090)


def test_environment_then_flags() -> None:
    env = {"ALERT_CONTACTS_QUOTA": "5", "ALERT_CONTACTS_DEFAULT_REGION": "us",
           "ALERT_CONTACTS_DINGTALK_HOSTS": "A.example.com, b.example.com"}
    options = parse([], env)
    assert options.settings == Settings(5, "US", ("a.example.com", "b.example.com"))
    assert parse(["--quota", "7"], env).settings.quota == 7


def test_service_mode_needs_certificates() -> None:
    with pytest.raises(ValueError, match="--webhook-cert-dir"):
        parse(["--webhook", "service"], {})
    options = parse(["--webhook", "service", "--webhook-cert-dir", "/certs"], {})
    assert options.webhook_port == 9443 and options.webhook_cert_dir == Path("/certs")


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["--quota", "many"], {}, "ALERT_CONTACTS_QUOTA 'many'"),
    (["--quota", "-1"], {}, "must not be negative"),
    ([], {"ALERT_CONTACTS_DEFAULT_REGION": "China"}, "ALERT_CONTACTS_DEFAULT_REGION"),
    ([], {"ALERT_CONTACTS_DINGTALK_HOSTS": " , "}, "ALERT_CONTACTS_DINGTALK_HOSTS"),
    (["--webhook", "sometimes"], {}, "--webhook 'sometimes'"),
    (["--health-port", "70000"], {}, "--health-port '70000'"),
])
def test_bad_values_are_named(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        parse(argv, env)
