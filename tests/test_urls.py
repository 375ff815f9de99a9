"""Engine URLs read like the official SDK reads them, and what the worker sends with its
upgrade (headers, credentials, Host) reaches the engine, for the link and for channels."""

from __future__ import annotations

import base64
import socket
import uuid

import pytest

from iii import IIIError, InitOptions, ReconnectionConfig, register_worker
from iii.testing import Engine

from conftest import stream_through_a_channel


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _options(**extra: object) -> InitOptions:
    return InitOptions(
        worker_name=f"urls-{uuid.uuid4().hex[:8]}",
        reconnection_config=ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200),
        **extra,  # type: ignore[arg-type]
    )


def _worker_upgrades(engine: Engine) -> list[tuple[str, dict[str, str]]]:
    return [u for u in engine.upgrade_requests() if not u[0].startswith("/ws/channels/")]


def test_init_options_headers_reach_the_engine(engine):
    worker = register_worker(engine.url, _options(headers={"X-Team": "blue", "Authorization": "Bearer t"}))
    try:
        (resource, headers), *_ = _worker_upgrades(engine)
        assert resource == "/"
        assert headers["x-team"] == "blue"
        assert headers["authorization"] == "Bearer t"
        assert headers["host"] == f"127.0.0.1:{engine.port}"
    finally:
        worker.shutdown()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_literal_credentials_query_and_scheme_case():
    with Engine(host="::1") as engine:
        url = f"WS://al%40ice:s3cret@[::1]:{engine.port}/?team=blue"
        worker = register_worker(url, _options())
        try:
            assert worker.get_connection_state() == "connected"
            resource, headers = _worker_upgrades(engine)[0]
            assert resource == "/?team=blue"
            assert headers["host"] == f"[::1]:{engine.port}"
            assert headers["authorization"] == "Basic " + base64.b64encode(b"al@ice:s3cret").decode()
        finally:
            worker.shutdown()


def test_channels_follow_the_engine_url(engine):
    """A channel end opened from a worker whose URL carries credentials and a query keeps
    them: same Basic auth, the query before the channel's own parameters (0.25.0's order)."""
    url = engine.url.replace("ws://", "ws://u:p@") + "/?team=blue"
    producer, consumer = register_worker(url, _options()), register_worker(url, _options())
    try:
        assert stream_through_a_channel(producer, consumer, b"hello") == b"hello"
        ends = [u for u in engine.upgrade_requests() if u[0].startswith("/ws/channels/")]
        queries = {u[0].split("?", 1)[1] for u in ends}
        assert {q.split("&")[0] for q in queries} == {"team=blue"}
        assert {q.rsplit("&", 1)[1] for q in queries} == {"dir=read", "dir=write"}
        for _, headers in ends:
            assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
            assert headers["host"] == f"127.0.0.1:{engine.port}"
    finally:
        producer.shutdown()
        consumer.shutdown()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ws://127.0.0.1:9/#frag", "fragment"),
        ("http://127.0.0.1:9", "ws:// or wss://"),
        ("ws://user@127.0.0.1:9", "without a password"),
        ("ws://127.0.0.1:99999", "bad port"),
    ],
)
def test_unusable_urls_fail_at_once_with_a_clear_error(url, why):
    with pytest.raises(IIIError, match=why):
        register_worker(url, _options())


def test_iii_token_is_a_bearer_token_unless_a_header_is_given(engine, monkeypatch):
    monkeypatch.setenv("III_TOKEN", "  s3cret \n")
    worker = register_worker(engine.url, _options())
    explicit = register_worker(engine.url, _options(headers={"authorization": "Bearer mine"}))
    try:
        first, second = _worker_upgrades(engine)[:2]
        assert first[1]["authorization"] == "Bearer s3cret"
        assert second[1]["authorization"] == "Bearer mine"
    finally:
        worker.shutdown()
        explicit.shutdown()


def test_channels_carry_the_iii_token(engine, monkeypatch):
    monkeypatch.setenv("III_TOKEN", "s3cret")
    producer, consumer = register_worker(engine.url, _options()), register_worker(engine.url, _options())
    try:
        assert stream_through_a_channel(producer, consumer, b"hi") == b"hi"
        ends = [u for u in engine.upgrade_requests() if u[0].startswith("/ws/channels/")]
        assert len(ends) == 2
        assert all(headers["authorization"] == "Bearer s3cret" for _, headers in ends)
    finally:
        producer.shutdown()
        consumer.shutdown()
