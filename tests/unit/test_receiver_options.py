"""The receiver's and delivery's options, and the receiver served over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import aiohttp
import pytest

from alert_contacts.receiver.server import start_receiver
from alert_contacts.runtime.certs import write_self_signed
from alert_contacts.runtime.options import ReceiverOptions, parse
from tests.unit.test_receiver import FakeEngine


def test_receiver_defaults_local_mode_binds_loopback_without_a_token() -> None:
    receiver = parse([], {}).receiver
    assert (receiver.port, receiver.address, receiver.token) == (8088, "127.0.0.1", None)
    assert parse(["--webhook", "none"], {}).receiver.address == "0.0.0.0"


def test_token_from_the_environment_or_a_file_and_never_in_repr(tmp_path: Path) -> None:
    from_env = parse([], {"ALERT_CONTACTS_RECEIVER_TOKEN": " t0ken \n"}).receiver
    assert from_env.token == "t0ken" and "t0ken" not in repr(from_env)
    token_file = tmp_path / "token"
    token_file.write_text("filed\n")
    from_file = parse(["--receiver-token-file", str(token_file)], {}).receiver
    assert from_file.token == "filed" and from_file.token_source == f"file {token_file}"
    with pytest.raises(ValueError, match="--receiver-token-file"):
        parse(["--receiver-token-file", str(tmp_path / "missing")], {})


@pytest.mark.parametrize(("flag", "value"), [("--receiver-port", "70000"),
                                             ("--receiver-max-body", "0"),
                                             ("--receiver-max-concurrency", "many")])
def test_bad_receiver_values_name_the_option(flag: str, value: str) -> None:
    with pytest.raises(ValueError, match=flag):
        parse([flag, value], {})


def test_delivery_options_read_smtp_bcc_and_templates(tmp_path: Path) -> None:
    (tmp_path / "dingtalk.md.j2").write_text("{{ status }}")
    options = parse([], {"ALERT_CONTACTS_SMTP_BCC": "false",
                         "ALERT_CONTACTS_TEMPLATES_DIR": str(tmp_path)}).delivery
    assert options.bcc is False and options.smtp is None
    assert (options.templates.dingtalk, options.templates.email) == ("{{ status }}", None)
    with pytest.raises(ValueError, match="ALERT_CONTACTS_SMTP_BCC"):
        parse([], {"ALERT_CONTACTS_SMTP_BCC": "maybe"})
    with pytest.raises(ValueError, match="ALERT_CONTACTS_TEMPLATES_DIR"):
        parse([], {"ALERT_CONTACTS_TEMPLATES_DIR": str(tmp_path / "nope")})


def test_the_receiver_serves_https_from_a_cert_dir(tmp_path: Path) -> None:
    ca = write_self_signed(tmp_path, ["127.0.0.1", "localhost"])

    async def main() -> None:
        options = ReceiverOptions(port=0, address="127.0.0.1", cert_dir=tmp_path, token="t")
        assert await start_receiver(options, FakeEngine()) is None  # port 0: disabled
        options = ReceiverOptions(port=_free_port(), address="127.0.0.1", cert_dir=tmp_path,
                                  token="t")
        runner = await start_receiver(options, FakeEngine())
        assert runner is not None
        try:
            context = ssl.create_default_context(cafile=str(ca))
            async with aiohttp.ClientSession() as session, session.get(
                    f"https://127.0.0.1:{options.port}/healthz", ssl=context) as response:
                assert response.status == 200
        finally:
            await runner.cleanup()
    asyncio.run(main())


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_dedup_window_is_an_option_with_a_ten_minute_default() -> None:
    assert parse([], {}).receiver.dedup_window == 600.0
    assert parse([], {"ALERT_CONTACTS_RECEIVER_DEDUP_WINDOW": "120"}).receiver.dedup_window == 120
    assert parse(["--receiver-dedup-window", "90"], {}).receiver.dedup_window == 90
    with pytest.raises(ValueError, match="--receiver-dedup-window"):
        parse(["--receiver-dedup-window", "0"], {})


def test_the_receiver_stops_within_its_shutdown_timeout() -> None:
    """A delivery still running does not hold the process past the pod's grace period."""
    from tests.unit.test_receiver import PAYLOAD
    engine = FakeEngine(delay=30.0)

    async def main() -> None:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        options = ReceiverOptions(port=port, address="127.0.0.1", token="t")
        runner = await start_receiver(options, engine, shutdown_timeout=0.5)
        assert runner is not None
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(session.post(
                f"http://127.0.0.1:{port}/v1/alerts/team/oncall", json=PAYLOAD,
                headers={"Authorization": "Bearer t"}))
            await asyncio.wait_for(engine.started.wait(), timeout=5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await runner.cleanup()
            assert loop.time() - started < 3.0
            request.cancel()
            with contextlib.suppress(BaseException):
                await request
    asyncio.run(main())
